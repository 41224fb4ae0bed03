"""Every knob in one place. Each field is read from an `AUTORESEARCH_<NAME>` environment variable."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from autoresearch.errors import ConfigError, describe_invalid

PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_path(name: str) -> Path:
    """A top-level project folder (environments, migrations): in a wheel it sits under _bundled/."""
    inside_wheel = PACKAGE_DIR / "_bundled" / name
    return inside_wheel if inside_wheel.is_dir() else PACKAGE_DIR.parent / name


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "autoresearch"


class SandboxMode(StrEnum):
    AUTO = "auto"  # the default: bubblewrap, or refuse to run trials (the same as bwrap)
    BWRAP = "bwrap"  # bubblewrap or refuse to run
    NONE = "none"  # plain subprocesses: only for code you trust; set on purpose, and shown everywhere


def _half_of_memory_mb() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 / 2)


class Price(BaseModel):
    """Dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)  # default: the input price
    cache_write: float | None = Field(default=None, ge=0)  # default: the input price


# List prices per million tokens when this table was written (2026-11); override with AUTORESEARCH_PRICES.
# A model not listed here is budgeted in tokens only.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-5": Price(input=1.25, output=10.0, cached_input=0.125),
    "gpt-5-mini": Price(input=0.25, output=2.0, cached_input=0.025),
    "gpt-4.1": Price(input=2.0, output=8.0, cached_input=0.5),
    "gpt-4o": Price(input=2.5, output=10.0, cached_input=1.25),
    "claude-opus-4-1": Price(input=15.0, output=75.0, cached_input=1.5, cache_write=18.75),
    "claude-sonnet-4-5": Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75),
    "claude-haiku-4-5": Price(input=1.0, output=5.0, cached_input=0.1, cache_write=1.25),
}


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
    sandbox: SandboxMode = Field(
        default=SandboxMode.AUTO,
        description="How trials are isolated: bubblewrap (auto, bwrap) or not at all (none, trusted code only).",
    )
    trial_memory_mb: int = Field(
        default_factory=_half_of_memory_mb,
        gt=0,
        description="A trial phase's memory when its preset sets no budget.memory_mb (default: half the host's).",
    )
    trial_disk_mb: int = Field(
        default=10_240,
        gt=0,
        description="What a trial may write to its folder, when its preset sets no disk_mb.",
    )
    trial_processes: int = Field(
        default=1024, gt=0, description="Processes and threads a trial phase may have at once."
    )
    trial_tmp_mb: int = Field(default=1024, gt=0, description="The size of a trial phase's private /tmp.")
    python: str = Field(default=sys.executable, description="The interpreter that runs trials.")
    log_cap_bytes: int = Field(default=2_000_000, gt=0, description="Each phase's log is cut beyond this.")
    log_tail_bytes: int = Field(default=4_000, gt=0, description="How much of the log a trial record keeps.")
    keep_trial_dirs: bool = Field(default=True, description="Keep each trial's working copy and logs.")
    confirm_top: int = Field(
        default=3,
        ge=0,
        description="A new campaign's default: its best distinct programs re-run on fresh seeds when the search ends.",
    )
    race: int = Field(
        default=1,
        ge=0,
        description="A new campaign's default: re-runs of a child that looks like a new best, within noise, "
        "before it may be a parent (0: none).",
    )
    confirm_seeds: int = Field(
        default=3,
        ge=0,
        description="A new campaign's default: the fresh seeds each confirmed program and the baseline run on "
        "(0: no confirmation).",
    )

    # LLM providers ---------------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AUTORESEARCH_OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="Read from AUTORESEARCH_OPENAI_API_KEY or OPENAI_API_KEY; never logged or stored.",
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AUTORESEARCH_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
        description="Read from AUTORESEARCH_ANTHROPIC_API_KEY or ANTHROPIC_API_KEY; never logged or stored.",
    )
    openai_compatible_api_key: SecretStr | None = Field(
        default=None, description="Key for an OpenAI-compatible server, if it wants one."
    )
    openai_base_url: str | None = Field(default=None, description="Send `openai:` calls here (a proxy).")
    anthropic_base_url: str | None = Field(default=None, description="Send `anthropic:` calls here.")
    llm_timeout_s: float = Field(
        default=120.0, gt=0, description="Per HTTP attempt; while streaming, the longest silence."
    )
    llm_retries: int = Field(default=5, ge=0, description="Retries of a 429, 5xx, timeout or dropped call.")
    llm_backoff_s: float = Field(default=1.0, ge=0, description="First retry's wait; doubles, at most 60 s.")
    llm_stream: bool = Field(default=True, description="Stream completions (no long idle connections).")
    prices: dict[str, Price] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="JSON: model -> {input, output, cached_input, cache_write} dollars per million tokens.",
    )
    api_token: SecretStr | None = Field(
        default=None, description="The token the CLI sends with --api URL; never logged or stored."
    )
    broker_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Celery broker for distributed workers."
    )
    lease_s: float = Field(
        default=60.0, gt=0, description="How long a worker's claim on a trial lasts without a heartbeat."
    )
    checkpoint_cap_mb: float = Field(
        default=64.0,
        ge=0,
        description="A trial's output folder (its checkpoint) is kept in the artifact store when it is "
        "at most this big; 0 keeps none.",
    )
    reconcile_s: float = Field(
        default=30.0,
        gt=0,
        description="How often a controller queues again what the broker lost (a Redis restart).",
    )
    visibility_timeout_s: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="Redis redelivers an unacknowledged task after this: keep it above the longest trial.",
    )
    artifacts_url: str = Field(
        default="",
        description="Where code bundles and logs go: s3://BUCKET/PREFIX, or a folder (default <data_dir>/artifacts).",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="An S3-compatible endpoint (MinIO, Ceph...); default AWS."
    )
    wandb_project: str | None = Field(
        default=None, description="Log each trial as a wandb run in this project (WANDB_MODE=offline works)."
    )
    novelty_threshold: float = Field(
        default=0.9, gt=0, le=1, description="Cosine similarity at which an idea counts as a duplicate."
    )

    # API limits ------------------------------------------------------------------------------
    api_max_body_bytes: int = Field(
        default=2 * 2**20,
        gt=0,
        description="The largest request body the API takes (2 MiB: a seed idea's diff at its 1,000,000 "
        "characters fits); a larger one is a 413, before its token is checked and without reading it.",
    )
    llm_base_urls: str = Field(
        default="",
        description="Comma-separated http(s)://HOST[:PORT][/PATH]: the only servers an "
        "`openai-compatible:URL:MODEL` of a cluster campaign (every one submitted through the API) may "
        "name. Empty: none; a local `autoresearch run` then names any. See docs/api.md.",
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'autoresearch.db'}"

    @property
    def environment_search_path(self) -> list[Path]:
        """Folders of AUTORESEARCH_ENVIRONMENTS_PATH, then environment folders registered with
        `env add`, then the bundled environments."""
        extra = [Path(p).expanduser().resolve() for p in self.environments_path.split(os.pathsep) if p]
        return [*extra, *self.registered_environments, bundled_path("environments")]

    @property
    def registry_file(self) -> Path:
        return self.data_dir / "environments.txt"

    @property
    def registered_environments(self) -> list[Path]:
        try:
            lines = self.registry_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [Path(line) for line in lines if line.strip()]

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
        raise ConfigError(describe_invalid(first, name)) from exc


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()
