"""The API's own knobs, read from `AUTORESEARCH_API_<NAME>` environment variables.

Kept apart from `autoresearch.settings.Settings` for now; they belong there and will move.
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from autoresearch.errors import ConfigError, describe_invalid


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTORESEARCH_API_", extra="ignore")

    anonymous_reads: bool = Field(
        default=False,
        description="Serve read routes to callers without a token; writes always need one.",
    )
    events_poll_s: float = Field(
        default=0.25, gt=0, le=10, description="How often an event stream reads the store for new events."
    )
    events_heartbeat_s: float = Field(
        default=15.0, gt=0, description="A quiet event stream sends a comment this often, so proxies keep it."
    )


def load_api_settings() -> ApiSettings:
    try:
        return ApiSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "AUTORESEARCH_API_" + str(first["loc"][0]).upper() if first["loc"] else "API settings"
        raise ConfigError(describe_invalid(first, name)) from exc
