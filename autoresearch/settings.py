"""Every knob in one place. Each field is read from an `AUTORESEARCH_<NAME>` environment variable."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from autoresearch.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_path(name: str) -> Path:
    """A top-level project folder (environments, migrations): in a wheel it sits under _bundled/."""
    inside_wheel = PACKAGE_DIR / "_bundled" / name
    return inside_wheel if inside_wheel.is_dir() else PACKAGE_DIR.parent / name


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "autoresearch"


class SandboxMode(StrEnum):
    AUTO = "auto"  # bubblewrap when it works here, else none (and say so)
    BWRAP = "bwrap"  # bubblewrap or refuse to run
    NONE = "none"  # plain subprocesses: only for code you trust


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTORESEARCH_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir, description="Database, trial folders, data.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/autoresearch.db. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    environments_path: str = Field(
        default="",
        description="Extra folders holding environments, separated by ':'; the bundled ones are always found.",
    )
    sandbox: SandboxMode = Field(default=SandboxMode.AUTO, description="How trials are isolated.")
    python: str = Field(default=sys.executable, description="The interpreter that runs trials.")
    log_cap_bytes: int = Field(default=2_000_000, gt=0, description="Each phase's log is cut beyond this.")
    log_tail_bytes: int = Field(default=4_000, gt=0, description="How much of the log a trial record keeps.")
    keep_trial_dirs: bool = Field(default=True, description="Keep each trial's working copy and logs.")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'autoresearch.db'}"

    @property
    def environment_search_path(self) -> list[Path]:
        extra = [Path(p).expanduser().resolve() for p in self.environments_path.split(os.pathsep) if p]
        return [*extra, bundled_path("environments")]

    @property
    def trials_dir(self) -> Path:
        return self.data_dir / "trials"

    @property
    def prepared_data_dir(self) -> Path:
        return self.data_dir / "data"


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "AUTORESEARCH_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise ConfigError(f"{name}: {first['msg']} (got {first.get('input')!r})") from exc


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()
