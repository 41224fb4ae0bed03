"""The tables: campaigns, ideas, trials and patches, one ORM class each.

Enum values are stored as short strings (not native database enums) so a new label needs no
migration; timestamps are UTC and come back timezone-aware on SQLite as on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names must not depend on the dialect, or a migration written on SQLite
# cannot drop a constraint on PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Long enough for every enum value; checked by the domain, not the database.
ENUM_LENGTH = 32
FIRST_OF_IDEA = "retry_of IS NULL AND role = 'search'"  # the trial that implemented its idea


def utc_now() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite drops the offset, so it is re-attached)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass an aware one (datetime.now(UTC))")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name == "postgresql":  # psycopg returns timestamptz aware: one call, not a chain of three
            return _in_utc
        return super().result_processor(dialect, coltype)


def _in_utc(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo is UTC else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CampaignRow(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    environment: Mapped[str] = mapped_column(String)
    preset: Mapped[str] = mapped_column(String)
    strategy: Mapped[str] = mapped_column(String)
    goal: Mapped[str] = mapped_column(Text)
    trial_budget: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)  # the search's: strategy and proposer
    train_seed: Mapped[int] = mapped_column(BigInteger, default=0)  # every search trial trains with it
    confirm_top: Mapped[int] = mapped_column(Integer, default=0)
    confirm_seeds: Mapped[int] = mapped_column(Integer, default=0)
    race: Mapped[int] = mapped_column(Integer, default=0)
    seconds_budget: Mapped[float | None] = mapped_column(Float)  # training seconds the search may spend
    status: Mapped[str] = mapped_column(String(ENUM_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    agents: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    distributed: Mapped[bool] = mapped_column(Boolean, default=False)  # driven by `autoresearch controller`
    # The controller driving it, under a lease like a trial's: one controller per campaign.
    controller: Mapped[str] = mapped_column(String, default="")
    controller_token: Mapped[int] = mapped_column(Integer, default=0)
    controller_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class IdeaRow(Base):
    __tablename__ = "ideas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    hypothesis: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(ENUM_LENGTH))
    surface: Mapped[str] = mapped_column(String)
    key: Mapped[str] = mapped_column(String)
    parent_trial_ids: Mapped[list[int]] = mapped_column(JSON)
    diff: Mapped[str] = mapped_column(Text)
    rationale: Mapped[str] = mapped_column(Text, default="")
    # use_alter: ideas and llm_calls refer to each other, so this constraint is created after both tables.
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id", use_alter=True))
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("ideas.id"))


class TrialRow(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("campaign_id", "number"),  # also the index for lookups by number
        Index("ix_trials_campaign_id_status", "campaign_id", "status"),
        Index("ix_trials_campaign_id_score_number", "campaign_id", "score", "number"),  # pages by score
        Index("ix_trials_status_lease_expires_at", "status", "lease_expires_at"),  # the expiry sweep
        # An idea is implemented once: a second implementer (a redelivered task) cannot add its trial.
        # Confirmations re-run an idea's program, and a retry its trial: neither is a second implementation.
        Index(
            "uq_trials_idea_id_first",
            "idea_id",
            unique=True,
            sqlite_where=text(FIRST_OF_IDEA),
            postgresql_where=text(FIRST_OF_IDEA),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("trials.id"))
    status: Mapped[str] = mapped_column(String(ENUM_LENGTH))
    seed: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str | None] = mapped_column(String(ENUM_LENGTH))
    score: Mapped[float | None] = mapped_column(Float)
    # JSON cannot hold NaN or infinities: those are stored as the strings "nan", "inf", "-inf".
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    log_tail: Mapped[str] = mapped_column(Text)
    code_hash: Mapped[str] = mapped_column(String)
    code_diff: Mapped[str] = mapped_column(Text)
    retry_of: Mapped[int | None] = mapped_column(ForeignKey("trials.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    analysis: Mapped[str] = mapped_column(Text, default="")
    worker: Mapped[str] = mapped_column(String, default="")
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    curve: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # encoded like metrics
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)  # a person keeps it a parent candidate
    vetoed: Mapped[bool] = mapped_column(Boolean, default=False)  # a person forbids it as a parent
    role: Mapped[str] = mapped_column(String(ENUM_LENGTH), default="search")
    confirms: Mapped[int | None] = mapped_column(ForeignKey("trials.id"))  # the trial a confirmation re-runs
    test_score: Mapped[float | None] = mapped_column(Float)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # environment, versions, hardware


class PatchRow(Base):
    __tablename__ = "patches"
    __table_args__ = (Index("ix_patches_trial_id_attempt", "trial_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    diff: Mapped[str] = mapped_column(Text)
    applied: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str] = mapped_column(Text)
    files: Mapped[list[str]] = mapped_column(JSON)
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id"))


class LLMCallRow(Base):
    """Every request to a model, as sent, with its answer and cost: the record budgets are counted from."""

    __tablename__ = "llm_calls"
    __table_args__ = (Index("ix_llm_calls_campaign_id_role", "campaign_id", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(ENUM_LENGTH))
    surface: Mapped[str] = mapped_column(String)
    model: Mapped[str] = mapped_column(String)
    template: Mapped[str] = mapped_column(String)
    prompt: Mapped[dict[str, Any]] = mapped_column(JSON)
    response: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    dollars: Mapped[float | None] = mapped_column(Float)  # None: the model has no price
    attempts: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    idea_id: Mapped[int | None] = mapped_column(ForeignKey("ideas.id"), index=True)
    trial_id: Mapped[int | None] = mapped_column(ForeignKey("trials.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class WorkerRow(Base):
    """A worker process: the queues it takes, what it can run at once, and when it was last alive."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    queues: Mapped[list[str]] = mapped_column(JSON)
    capacity: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class TrialEventRow(Base):
    """Each state a trial entered, in order: what the API's event stream reads from."""

    __tablename__ = "trial_events"
    __table_args__ = (Index("ix_trial_events_campaign_id_id", "campaign_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(ENUM_LENGTH))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class ApiTokenRow(Base):
    """An API token, stored as its sha256 only; `prefix` names it in listings."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    scope: Mapped[str] = mapped_column(String(ENUM_LENGTH))
    token_hash: Mapped[str] = mapped_column(String, unique=True)
    prefix: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
