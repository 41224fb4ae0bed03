"""`SqlStore`: the Store on SQLite or PostgreSQL through SQLAlchemy.

Every method is one short transaction that returns frozen domain objects, never rows. A trial's
state moves only by a guarded `UPDATE ... WHERE status IN (allowed sources)` whose row count says
whether this caller won.

The statements are built once, at import, over the ORM classes' columns and run on a Core
connection: building a statement and running it through a Session cost several times what
SQLite itself takes for a claim or a finish.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
import sqlite3
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alembic.util import CommandError
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    Integer,
    Row,
    Select,
    Update,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    make_url,
    or_,
    select,
    update,
)
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.orm import aliased

from autoresearch.adapters.db import migrate
from autoresearch.adapters.db.models import (
    ApiTokenRow,
    CampaignRow,
    IdeaRow,
    LLMCallRow,
    PatchRow,
    TrialEventRow,
    TrialRow,
    WorkerRow,
    utc_now,
)
from autoresearch.domain.model import (
    BUDGET_ROLES,
    ApiToken,
    Campaign,
    CampaignStatus,
    FailureLabel,
    Idea,
    IdeaOrigin,
    Lease,
    LineageEntry,
    LLMCall,
    Patch,
    Role,
    Scope,
    Trial,
    TrialBrief,
    TrialEvent,
    TrialPage,
    TrialQuery,
    TrialResult,
    TrialRole,
    TrialSort,
    TrialStatus,
    Usage,
    WorkerInfo,
    allowed_sources,
    idea_title,
)
from autoresearch.errors import ConfigError, Conflict, NotFound, StoreError
from autoresearch.services.store import Store

SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_PRAGMAS = (
    f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous = NORMAL",  # with WAL: survives a crash of the process, not of the OS
    "PRAGMA foreign_keys = ON",
)
POSTGRES_CONNECT_TIMEOUT_S = 10
PING_AFTER_IDLE_S = 1.0


# statements ----------------------------------------------------------------------------------


def _status_in(statuses: Collection[TrialStatus]) -> ColumnElement[bool]:
    # `status = a OR status = b` rather than IN: IN takes an expanding parameter that is
    # re-rendered on every execution.
    return or_(*(TrialRow.status == status for status in sorted(statuses)))


def _move_to(target: TrialStatus) -> Update:
    """The guarded UPDATE that moves a trial to `target`; its SET clause comes from the parameters."""
    return update(TrialRow).where(TrialRow.id == bindparam("trial_id"), _status_in(allowed_sources(target)))


_CAMPAIGN_BY_ID = select(CampaignRow).where(CampaignRow.id == bindparam("campaign_id"))
_CAMPAIGN_BY_NAME = select(CampaignRow).where(CampaignRow.name == bindparam("name"))
_CAMPAIGNS_NEWEST_FIRST = select(CampaignRow).order_by(CampaignRow.id.desc())
_INSERT_CAMPAIGN = insert(CampaignRow).returning(CampaignRow)
_UPDATE_CAMPAIGN = (
    update(CampaignRow).where(CampaignRow.id == bindparam("campaign_id")).returning(CampaignRow)
)
# On PostgreSQL two add_trial calls would read the same max(number): they take turns on the
# campaign row. NO KEY UPDATE still lets ideas be inserted for the campaign meanwhile.
_LOCK_CAMPAIGN = (
    select(CampaignRow.id).where(CampaignRow.id == bindparam("campaign_id")).with_for_update(key_share=True)
)
_CLAIM_CAMPAIGN = (
    update(CampaignRow)
    .where(
        CampaignRow.id == bindparam("campaign_id"),
        or_(
            CampaignRow.controller_expires_at.is_(None), CampaignRow.controller_expires_at < bindparam("now")
        ),
    )
    .values(controller_token=CampaignRow.controller_token + 1)
    .returning(CampaignRow.controller_token)
)
_RENEW_CAMPAIGN = update(CampaignRow).where(
    CampaignRow.id == bindparam("campaign_id"), CampaignRow.controller_token == bindparam("token")
)

_IDEA_BY_ID = select(IdeaRow).where(IdeaRow.id == bindparam("idea_id"))
_INSERT_IDEA = insert(IdeaRow).returning(IdeaRow)
_IDEAS_BY_ID = (
    select(IdeaRow)
    .where(IdeaRow.campaign_id == bindparam("campaign_id"), IdeaRow.id > bindparam("after"))
    .order_by(IdeaRow.id)
)

_TRIAL_BY_ID = select(TrialRow).where(TrialRow.id == bindparam("trial_id"))
_FIRST_TRIAL_OF_IDEA = select(TrialRow).where(
    TrialRow.idea_id == bindparam("idea_id"), TrialRow.retry_of.is_(None), TrialRow.role == TrialRole.SEARCH
)
_TRIAL_BY_NUMBER = select(TrialRow).where(
    TrialRow.campaign_id == bindparam("campaign_id"), TrialRow.number == bindparam("number")
)
_TRIALS_BY_NUMBER = (
    select(TrialRow).where(TrialRow.campaign_id == bindparam("campaign_id")).order_by(TrialRow.number)
)
_TRIALS_IN_STATUSES = _TRIALS_BY_NUMBER.where(TrialRow.status.in_(bindparam("statuses", expanding=True)))


def _brief_columns(trial: type[TrialRow]) -> tuple[Any, ...]:
    """What lists show of a trial (TrialBrief, less its parent's number): no diff, log, metrics or curve.
    `_brief` reads them in this order."""
    return (
        trial.id,
        trial.number,
        trial.status,
        trial.label,
        trial.score,
        trial.pinned,
        trial.vetoed,
        trial.seed,
        trial.role,
        trial.worker,
        trial.duration_s,
        trial.created_at,
        trial.started_at,
        trial.finished_at,
    )


_BRIEF_WIDTH = len(_brief_columns(TrialRow))
_PARENT = aliased(TrialRow, name="parent")
_BRIEFS = select(*_brief_columns(TrialRow), _PARENT.number.label("parent")).outerjoin(
    _PARENT, _PARENT.id == TrialRow.parent_id
)
_OF = aliased(TrialRow, name="of")
_STEP = aliased(TrialRow, name="step")
_CHAIN = (
    select(*_brief_columns(TrialRow), TrialRow.parent_id, literal(1).label("depth"))
    .join(_OF, _OF.parent_id == TrialRow.id)
    .where(_OF.campaign_id == bindparam("campaign_id"), _OF.number == bindparam("number"))
    .cte("chain", recursive=True)
)
_CHAIN = _CHAIN.union_all(
    select(*_brief_columns(_STEP), _STEP.parent_id, _CHAIN.c.depth + 1).join(
        _CHAIN, _STEP.id == _CHAIN.c.parent_id
    )
)
# A walk up the primary key, one row per step, carrying what a TrialBrief shows: the root comes last.
_ANCESTORS = select(_CHAIN).order_by(_CHAIN.c.depth.desc())
_TRIAL_COUNTS = (
    select(TrialRow.status, func.count())
    .where(TrialRow.campaign_id == bindparam("campaign_id"))
    .group_by(TrialRow.status)
)
_BUDGET_COUNTS = _TRIAL_COUNTS.where(TrialRow.role.in_([str(role) for role in BUDGET_ROLES]))
_NEXT_NUMBER = (
    select(func.coalesce(func.max(TrialRow.number) + 1, 0))
    .where(TrialRow.campaign_id == bindparam("numbered_in"))
    .scalar_subquery()
)
# One INSERT ... (SELECT max(number) + 1): atomic on SQLite, whose writers run one at a time.
_INSERT_TRIAL = insert(TrialRow).values(number=_NEXT_NUMBER).returning(TrialRow)
_CLAIM = (
    _move_to(TrialStatus.RUNNING)
    .values(lease_token=TrialRow.lease_token + 1)
    .returning(
        TrialRow.id, TrialRow.campaign_id, TrialRow.number, TrialRow.lease_token, TrialRow.lease_expires_at
    )
)
_FINISH = {status: _move_to(status).returning(TrialRow) for status in TrialStatus if status.is_terminal}
# A worker's result counts only under the fencing token of the claim it holds.
_FINISH_FENCED = {
    status: statement.where(TrialRow.lease_token == bindparam("token"))
    for status, statement in _FINISH.items()
}
_RENEW = update(TrialRow).where(
    TrialRow.id == bindparam("trial_id"),
    TrialRow.status == TrialStatus.RUNNING,
    TrialRow.lease_token == bindparam("token"),
)
_EXPIRE = (
    update(TrialRow)
    .where(TrialRow.status == TrialStatus.RUNNING, TrialRow.lease_expires_at < bindparam("now"))
    .returning(TrialRow)
)
_EXPIRE_IN_CAMPAIGN = _EXPIRE.where(TrialRow.campaign_id == bindparam("in_campaign"))
_INTERRUPT = (
    update(TrialRow)
    .where(
        TrialRow.campaign_id == bindparam("in_campaign"),
        _status_in(allowed_sources(TrialStatus.INTERRUPTED)),
    )
    .returning(TrialRow)
)

_SET_ANALYSIS = update(TrialRow).where(TrialRow.id == bindparam("trial_id"))
_STEERED = (
    select(TrialRow)
    .where(TrialRow.campaign_id == bindparam("campaign_id"), or_(TrialRow.pinned, TrialRow.vetoed))
    .order_by(TrialRow.number)
)
_SET_FLAGS = update(TrialRow).where(TrialRow.id == bindparam("trial_id")).returning(TrialRow)
_INSERT_EVENT = insert(TrialEventRow)
_EVENTS_AFTER = (
    select(TrialEventRow)
    .where(TrialEventRow.campaign_id == bindparam("campaign_id"), TrialEventRow.id > bindparam("after"))
    .order_by(TrialEventRow.id)
    .limit(bindparam("limit"))
)

_INSERT_TOKEN = insert(ApiTokenRow).returning(ApiTokenRow)
_TOKEN_BY_HASH = select(ApiTokenRow).where(
    ApiTokenRow.token_hash == bindparam("token_hash"), ApiTokenRow.revoked_at.is_(None)
)
_REVOKE_TOKEN = update(ApiTokenRow).where(ApiTokenRow.id == bindparam("token_id")).returning(ApiTokenRow)
_TOKENS = select(ApiTokenRow).order_by(ApiTokenRow.id)

_INSERT_PATCH = insert(PatchRow).returning(PatchRow)
_PATCHES_BY_ATTEMPT = (
    select(PatchRow).where(PatchRow.trial_id == bindparam("trial_id")).order_by(PatchRow.attempt, PatchRow.id)
)

_WORKER_BY_NAME = select(WorkerRow).where(WorkerRow.name == bindparam("worker_name"))
_UPDATE_WORKER = update(WorkerRow).where(WorkerRow.name == bindparam("worker_name"))
_WORKERS_BY_NAME = select(WorkerRow).order_by(WorkerRow.name)

_INSERT_LLM_CALL = insert(LLMCallRow).returning(LLMCallRow)
_LLM_CALL_BY_ID = select(LLMCallRow).where(LLMCallRow.id == bindparam("call_id"))
_REJECT_LLM_CALL = update(LLMCallRow).where(LLMCallRow.id == bindparam("call_id"))
_LLM_CALLS = (
    select(LLMCallRow).where(LLMCallRow.campaign_id == bindparam("campaign_id")).order_by(LLMCallRow.id)
)
_LLM_USAGE = (
    select(
        LLMCallRow.role,
        func.count(),
        func.sum(LLMCallRow.input_tokens),
        func.sum(LLMCallRow.output_tokens),
        func.sum(LLMCallRow.cached_tokens),
        func.coalesce(func.sum(LLMCallRow.dollars), 0.0),
        func.count() - func.count(LLMCallRow.dollars),  # count(column) skips NULLs: the unpriced calls
    )
    .where(LLMCallRow.campaign_id == bindparam("campaign_id"))
    .group_by(LLMCallRow.role)
)


# rows -> domain ------------------------------------------------------------------------------


def _encode_metrics(metrics: Mapping[str, float]) -> dict[str, float | str]:
    return {k: float(v) if math.isfinite(v) else str(float(v)) for k, v in metrics.items()}


def _decode_metrics(stored: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in stored.items()}  # float("nan"), float("-inf") parse back


def _id_in(ref: str) -> int | None:
    """The id a campaign reference of ASCII digits names: `str.isdigit` takes '²' too, which `int` refuses,
    and SQLite refuses an integer past 64 bits."""
    return int(ref) if ref.isascii() and ref.isdigit() and len(ref) <= 18 else None


def _campaign(row: Row[Any]) -> Campaign:
    return Campaign(
        id=row.id,
        name=row.name,
        environment=row.environment,
        preset=row.preset,
        strategy=row.strategy,
        goal=row.goal,
        trial_budget=row.trial_budget,
        concurrency=row.concurrency,
        seed=row.seed,
        status=CampaignStatus(row.status),
        created_at=row.created_at,
        train_seed=row.train_seed,
        confirm_top=row.confirm_top,
        confirm_seeds=row.confirm_seeds,
        race=row.race,
        seconds_budget=row.seconds_budget,
        agents=dict(row.agents or {}),
        distributed=row.distributed,
        controller=row.controller if row.controller_expires_at is not None else "",
    )


def _idea(row: Row[Any]) -> Idea:
    return Idea(
        id=row.id,
        campaign_id=row.campaign_id,
        hypothesis=row.hypothesis,
        origin=IdeaOrigin(row.origin),
        surface=row.surface,
        key=row.key,
        parent_trial_ids=tuple(int(i) for i in row.parent_trial_ids),
        diff=row.diff,
        rationale=row.rationale,
        llm_call_id=row.llm_call_id,
        duplicate_of=row.duplicate_of,
    )


def _trial(row: Row[Any]) -> Trial:
    return Trial(
        id=row.id,
        campaign_id=row.campaign_id,
        number=row.number,
        idea_id=row.idea_id,
        parent_id=row.parent_id,
        status=TrialStatus(row.status),
        seed=row.seed,
        label=FailureLabel(row.label) if row.label is not None else None,
        score=row.score,
        metrics=_decode_metrics(row.metrics),
        reason=row.reason,
        exit_code=row.exit_code,
        duration_s=row.duration_s,
        log_tail=row.log_tail,
        code_hash=row.code_hash,
        code_diff=row.code_diff,
        retry_of=row.retry_of,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        analysis=row.analysis,
        worker=row.worker,
        lease_token=row.lease_token,
        lease_expires_at=row.lease_expires_at,
        curve=tuple(_decode_metrics(point) for point in row.curve or ()),
        pinned=row.pinned,
        vetoed=row.vetoed,
        role=TrialRole(row.role),
        confirms=row.confirms,
        test_score=row.test_score,
        record=dict(row.record or {}),
    )


def _token(row: Row[Any]) -> ApiToken:
    return ApiToken(
        id=row.id,
        name=row.name,
        scope=Scope(row.scope),
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _log_events(connection: Connection, rows: Sequence[Any], status: TrialStatus) -> None:
    """Append each trial's new state to the outbox the event stream reads, in the same transaction."""
    if rows:
        at = utc_now()
        connection.execute(
            _INSERT_EVENT,
            [
                {
                    "campaign_id": r.campaign_id,
                    "trial_id": r.id,
                    "number": r.number,
                    "status": status,
                    "at": at,
                }
                for r in rows
            ],
        )


@functools.lru_cache(maxsize=256)
def _page_statement(
    statuses: tuple[TrialStatus, ...],
    labels: tuple[FailureLabel, ...],
    min_score: bool,
    max_score: bool,
    sort: TrialSort,
    resumed: bool,
    roles: tuple[TrialRole, ...] = (),
) -> Select[*tuple[Any, ...]]:
    """The SELECT of one shape of page of trials. Every value (campaign, score bounds, cursor, limit) is a
    parameter, so a shape is built once: building a statement costs more than running it."""
    statement = _BRIEFS.where(TrialRow.campaign_id == bindparam("campaign_id"))
    if statuses:
        statement = statement.where(_status_in(statuses))
    if labels:
        statement = statement.where(or_(*(TrialRow.label == str(label) for label in labels)))
    if roles:
        statement = statement.where(or_(*(TrialRow.role == str(role) for role in roles)))
    if min_score:
        statement = statement.where(TrialRow.score >= bindparam("min_score"))
    if max_score:
        statement = statement.where(TrialRow.score <= bindparam("max_score"))
    descending = sort in (TrialSort.NUMBER_DESC, TrialSort.SCORE_DESC)
    after_number = bindparam("after_number", type_=Integer)
    if sort in (TrialSort.SCORE, TrialSort.SCORE_DESC):  # unscored trials are left out
        statement = statement.where(TrialRow.score.is_not(None))
        if resumed:
            after_score = bindparam("after_score", type_=Float)
            beyond = TrialRow.score < after_score if descending else TrialRow.score > after_score
            tie = and_(TrialRow.score == after_score, TrialRow.number > after_number)
            statement = statement.where(or_(beyond, tie))
        score = TrialRow.score.desc() if descending else TrialRow.score.asc()
        statement = statement.order_by(score, TrialRow.number.asc())
    else:
        if resumed:
            statement = statement.where(
                TrialRow.number < after_number if descending else TrialRow.number > after_number
            )
        statement = statement.order_by(TrialRow.number.desc() if descending else TrialRow.number.asc())
    return statement.limit(bindparam("limit", type_=Integer))


def _brief(row: Row[*tuple[Any, ...]], parent: int | None) -> TrialBrief:
    """The TrialBrief of a row that starts with `_brief_columns`, unpacked by position: reading a Row's
    fields by name costs more than everything else a page of them needs."""
    (
        id_,
        number,
        status,
        label,
        score,
        pinned,
        vetoed,
        seed,
        role,
        worker,
        duration_s,
        created,
        started,
        finished,
    ) = row[:_BRIEF_WIDTH]
    return TrialBrief(
        id=id_,
        number=number,
        parent=parent,
        status=TrialStatus(status),
        label=FailureLabel(label) if label is not None else None,
        score=score,
        pinned=pinned,
        vetoed=vetoed,
        seed=seed,
        role=TrialRole(role),
        worker=worker,
        duration_s=duration_s,
        created_at=created,
        started_at=started,
        finished_at=finished,
    )


def _encode_cursor(value: float | None, number: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([value, number]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float | None, int]:
    try:
        value, number = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not (value is None or isinstance(value, int | float)) or not isinstance(number, int):
            raise ValueError(cursor)
        return (float(value) if value is not None else None), number
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ConfigError(f"not a cursor this API gave out: {cursor!r}") from exc


def _patch(row: Row[Any]) -> Patch:
    return Patch(
        id=row.id,
        trial_id=row.trial_id,
        attempt=row.attempt,
        diff=row.diff,
        applied=row.applied,
        error=row.error,
        files=tuple(row.files),
        llm_call_id=row.llm_call_id,
    )


def _llm_call(row: Row[Any]) -> LLMCall:
    return LLMCall(
        id=row.id,
        campaign_id=row.campaign_id,
        role=Role(row.role),
        model=row.model,
        template=row.template,
        prompt=row.prompt,
        response=row.response,
        error=row.error,
        usage=Usage(
            calls=1,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cached_tokens=row.cached_tokens,
            dollars=row.dollars or 0.0,
            unpriced_calls=int(row.dollars is None),
        ),
        attempts=row.attempts,
        duration_s=row.duration_s,
        idea_id=row.idea_id,
        trial_id=row.trial_id,
        surface=row.surface,
        created_at=row.created_at,
    )


# engine --------------------------------------------------------------------------------------


def safe_url(url: str) -> str:
    """The URL with its password hidden, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unusable(shown_url: str, exc: OperationalError | InterfaceError) -> StoreError:
    """Server down, wrong database, locked file: one line naming the URL (password hidden)."""
    return StoreError(f"cannot use the database at {shown_url}: {_first_line(exc.orig or exc)}")


def _sqlite_file(url: str) -> Path | None:
    """The database file of a sqlite URL; None for other backends. StoreError for in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or parsed.query.get("mode") == "memory":
        raise StoreError(
            f"{safe_url(url)}: in-memory SQLite cannot be shared between the store and its migrations; "
            "use a file, e.g. sqlite:///path/to/autoresearch.db"
        )
    return Path(database).expanduser()


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL (readers never block the one writer), waiting out other processes.

    Switching takes a read lock and then the write lock; SQLite refuses that upgrade at once,
    without its busy handler, while another connection writes, e.g. a process migrating a new file.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
            _use_wal(cursor)
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    # Up to 20 connections stay open once made (the default keeps 5): with more requests at once than the
    # pool keeps, the API opened and closed a connection, a server process each, per request.
    engine = create_engine(parsed, connect_args=connect_args, pool_size=20)
    _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Check a pooled connection before use when it sat idle for PING_AFTER_IDLE_S or more, and replace
    it if the server dropped it: after a database restart the next call reconnects instead of failing.
    A connection in steady use goes unchecked; checking before every use (pool_pre_ping) is a round trip
    more per transaction."""

    @event.listens_for(engine.pool, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)  # None: a new connection
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"the pooled connection is gone: {_first_line(exc)}") from exc


class SqlStore(Store):
    """The Store over one SQLAlchemy engine. Use `open_store` to get one with the schema at head."""

    def __init__(self, url: str) -> None:
        self.url = safe_url(url)  # never holds the password
        try:
            self.engine = _engine(url)
        except (ArgumentError, ImportError) as exc:
            hint = ""
            if self.url.startswith("postgres"):  # postgres:// and postgresql:// (psycopg2) are common slips
                hint = "; write postgresql+psycopg://user@host:5432/dbname"
            raise StoreError(f"cannot open a database at {self.url}: {_first_line(exc)}{hint}") from exc
        # SQLite runs one writer at a time; PostgreSQL needs a row lock where a write reads first.
        self._locks_rows = self.engine.dialect.name != "sqlite"
        # PostgreSQL: reads skip BEGIN and COMMIT, a round trip each. SQLite's cost nothing (it runs in
        # this process), so its reads keep a transaction as writes do.
        self._reader = (
            self.engine
            if self.engine.dialect.name == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    def __repr__(self) -> str:
        return f"SqlStore({self.url!r})"

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One connection and transaction: commits on success, rolls back on any exception."""
        with self._errors_mapped(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """One connection for reads that need no snapshot across statements (one statement, or a second
        that only explains an empty first); on PostgreSQL in autocommit (see __init__)."""
        with self._errors_mapped(), self._reader.connect() as connection:
            yield connection

    @contextmanager
    def _errors_mapped(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            raise _unusable(self.url, exc) from exc
        except DataError as exc:  # a value this database cannot hold: a NUL in text, a number out of range
            raise ConfigError(
                f"the database cannot store a value given: {_first_line(exc.orig or exc)}"
            ) from exc

    @staticmethod
    def _require(
        connection: Connection, statement: Select[Any], params: dict[str, Any], what: str
    ) -> Row[Any]:
        row = connection.execute(statement, params).one_or_none()
        if row is None:
            raise NotFound(f"no {what} with id {next(iter(params.values()))}")
        return row

    # campaigns -------------------------------------------------------------------------------
    def create_campaign(
        self,
        *,
        name: str,
        environment: str,
        preset: str,
        strategy: str,
        goal: str,
        trial_budget: int,
        concurrency: int,
        seed: int,
        train_seed: int = 0,
        confirm_top: int = 0,
        confirm_seeds: int = 0,
        race: int = 0,
        seconds_budget: float | None = None,
        agents: Mapping[str, Any] | None = None,
        distributed: bool = False,
    ) -> Campaign:
        values = {
            "race": race,
            "seconds_budget": seconds_budget,
            "train_seed": train_seed,
            "confirm_top": confirm_top,
            "confirm_seeds": confirm_seeds,
            "name": name,
            "environment": environment,
            "preset": preset,
            "strategy": strategy,
            "goal": goal,
            "trial_budget": trial_budget,
            "concurrency": concurrency,
            "seed": seed,
            "status": CampaignStatus.RUNNING,
            "agents": dict(agents or {}),
            "distributed": distributed,
            "controller": "",
            "controller_token": 0,
        }
        try:
            with self._transaction() as connection:
                return _campaign(connection.execute(_INSERT_CAMPAIGN, values).one())
        except IntegrityError as exc:  # the only constraint a new campaign can break is its name
            raise ConfigError(f"a campaign named {name!r} already exists; choose another name") from exc

    def get_campaign(self, ref: int | str) -> Campaign:
        with self._reading() as connection:
            row: Row[Any] | None = None
            if isinstance(ref, str):
                row = connection.execute(_CAMPAIGN_BY_NAME, {"name": ref}).one_or_none()
                if row is None and (campaign_id := _id_in(ref)) is not None:
                    row = connection.execute(_CAMPAIGN_BY_ID, {"campaign_id": campaign_id}).one_or_none()
            else:
                row = connection.execute(_CAMPAIGN_BY_ID, {"campaign_id": ref}).one_or_none()
        if row is None:
            what = f"named {ref!r}" if isinstance(ref, str) and not ref.isdigit() else f"{ref!r}"
            raise NotFound(f"no campaign {what} (by name or id)")
        return _campaign(row)

    def list_campaigns(self) -> list[Campaign]:
        with self._reading() as connection:
            return [_campaign(row) for row in connection.execute(_CAMPAIGNS_NEWEST_FIRST)]

    def set_campaign_status(self, campaign_id: int, status: CampaignStatus) -> None:
        self._update_campaign(campaign_id, {"status": status})

    def move_campaign(
        self, campaign_id: int, *, sources: Collection[CampaignStatus], target: CampaignStatus
    ) -> Campaign | None:
        statement = (
            update(CampaignRow)
            .where(CampaignRow.id == campaign_id, CampaignRow.status.in_([str(s) for s in sources]))
            .values(status=target)
            .returning(CampaignRow)
        )
        with self._transaction() as connection:
            row = connection.execute(statement).one_or_none()
            if row is None:
                self._require(connection, _CAMPAIGN_BY_ID, {"campaign_id": campaign_id}, "campaign")
                return None
            return _campaign(row)

    def set_campaign_limits(
        self,
        campaign_id: int,
        *,
        trial_budget: int | None = None,
        concurrency: int | None = None,
        agents: Mapping[str, Any] | None = None,
    ) -> Campaign:
        changes: dict[str, Any] = {}
        if trial_budget is not None:
            changes["trial_budget"] = trial_budget
        if concurrency is not None:
            changes["concurrency"] = concurrency
        if agents is not None:
            changes["agents"] = dict(agents)
        if not changes:
            return self.get_campaign(campaign_id)
        return self._update_campaign(campaign_id, changes)

    def claim_campaign(self, campaign_id: int, *, controller: str, lease_s: float) -> int | None:
        now = utc_now()
        changes = {
            "campaign_id": campaign_id,
            "now": now,
            "controller": controller,
            "controller_expires_at": now + timedelta(seconds=lease_s),
        }
        with self._transaction() as connection:
            token = connection.execute(_CLAIM_CAMPAIGN, changes).scalar_one_or_none()
            if token is None:
                self._require(connection, _CAMPAIGN_BY_ID, {"campaign_id": campaign_id}, "campaign")
            return token

    def renew_campaign(self, campaign_id: int, token: int, lease_s: float) -> bool:
        changes = {
            "campaign_id": campaign_id,
            "token": token,
            "controller_expires_at": utc_now() + timedelta(seconds=lease_s),
        }
        with self._transaction() as connection:
            return connection.execute(_RENEW_CAMPAIGN, changes).rowcount == 1

    def release_campaign(self, campaign_id: int, token: int) -> None:
        changes = {
            "campaign_id": campaign_id,
            "token": token,
            "controller": "",
            "controller_expires_at": None,
        }
        with self._transaction() as connection:
            connection.execute(_RENEW_CAMPAIGN, changes)

    def _update_campaign(self, campaign_id: int, changes: dict[str, Any]) -> Campaign:
        with self._transaction() as connection:
            row = connection.execute(_UPDATE_CAMPAIGN, {"campaign_id": campaign_id, **changes}).one_or_none()
        if row is None:
            raise NotFound(f"no campaign with id {campaign_id}")
        return _campaign(row)

    # ideas -----------------------------------------------------------------------------------
    def add_idea(
        self,
        campaign_id: int,
        *,
        hypothesis: str,
        origin: IdeaOrigin,
        surface: str = "",
        key: str = "",
        parent_trial_ids: Sequence[int] = (),
        diff: str = "",
        rationale: str = "",
        llm_call_id: int | None = None,
        duplicate_of: int | None = None,
    ) -> Idea:
        values = {
            "campaign_id": campaign_id,
            "hypothesis": hypothesis,
            "origin": origin,
            "surface": surface,
            "key": key,
            "parent_trial_ids": list(parent_trial_ids),
            "diff": diff,
            "rationale": rationale,
            "llm_call_id": llm_call_id,
            "duplicate_of": duplicate_of,
        }
        try:
            with self._transaction() as connection:
                return _idea(connection.execute(_INSERT_IDEA, values).one())
        except IntegrityError as exc:
            raise NotFound(
                f"no campaign {campaign_id}, LLM call {llm_call_id} or idea {duplicate_of} to refer to"
            ) from exc

    def get_idea(self, idea_id: int) -> Idea:
        with self._reading() as connection:
            return _idea(self._require(connection, _IDEA_BY_ID, {"idea_id": idea_id}, "idea"))

    def list_ideas(self, campaign_id: int, *, after: int = 0) -> list[Idea]:
        with self._reading() as connection:
            params = {"campaign_id": campaign_id, "after": after}
            ideas = [_idea(row) for row in connection.execute(_IDEAS_BY_ID, params)]
            if not ideas:
                self._require(connection, _CAMPAIGN_BY_ID, {"campaign_id": campaign_id}, "campaign")
            return ideas

    # trials ----------------------------------------------------------------------------------
    def add_trial(
        self,
        campaign_id: int,
        *,
        idea_id: int,
        parent_id: int | None,
        seed: int,
        code_diff: str = "",
        retry_of: int | None = None,
        role: TrialRole = TrialRole.SEARCH,
        confirms: int | None = None,
    ) -> Trial:
        values: dict[str, Any] = {
            "role": role,
            "confirms": confirms,
            "record": {},
            "numbered_in": campaign_id,
            "campaign_id": campaign_id,
            "idea_id": idea_id,
            "parent_id": parent_id,
            "status": TrialStatus.PENDING,
            "seed": seed,
            "metrics": {},
            "curve": [],
            "reason": "",
            "log_tail": "",
            "code_hash": "",
            "code_diff": code_diff,
            "retry_of": retry_of,
        }
        try:
            with self._transaction() as connection:
                if self._locks_rows:
                    self._require(connection, _LOCK_CAMPAIGN, {"campaign_id": campaign_id}, "campaign")
                row = connection.execute(_INSERT_TRIAL, values).one()
                _log_events(connection, [row], TrialStatus.PENDING)
                return _trial(row)
        except IntegrityError as exc:
            self._explain_missing_references(campaign_id, idea_id, parent_id, retry_of)
            if retry_of is None and role is TrialRole.SEARCH and self.first_trial_of(idea_id) is not None:
                raise Conflict(f"idea {idea_id} already has its trial") from exc
            reason = _first_line(exc.orig or exc)
            raise StoreError(f"cannot add a trial to campaign {campaign_id}: {reason}") from exc

    def _explain_missing_references(
        self, campaign_id: int, idea_id: int, parent_id: int | None, retry_of: int | None
    ) -> None:
        """Raise NotFound naming whichever id an insert's foreign keys did not find."""
        with self._transaction() as connection:
            self._require(connection, _CAMPAIGN_BY_ID, {"campaign_id": campaign_id}, "campaign")
            self._require(connection, _IDEA_BY_ID, {"idea_id": idea_id}, "idea")
            if parent_id is not None:
                self._require(connection, _TRIAL_BY_ID, {"trial_id": parent_id}, "parent trial")
            if retry_of is not None:
                self._require(connection, _TRIAL_BY_ID, {"trial_id": retry_of}, "trial to retry")

    def first_trial_of(self, idea_id: int) -> Trial | None:
        with self._reading() as connection:
            row = connection.execute(_FIRST_TRIAL_OF_IDEA, {"idea_id": idea_id}).one_or_none()
        return _trial(row) if row is not None else None

    def claim_trial(self, trial_id: int, *, worker: str = "", lease_s: float | None = None) -> Lease | None:
        now = utc_now()
        changes = {
            "trial_id": trial_id,
            "status": TrialStatus.RUNNING,
            "started_at": now,
            "worker": worker,
            "lease_expires_at": now + timedelta(seconds=lease_s) if lease_s is not None else None,
        }
        with self._transaction() as connection:
            row = connection.execute(_CLAIM, changes).one_or_none()
            if row is None:
                self._require(connection, _TRIAL_BY_ID, {"trial_id": trial_id}, "trial")
                return None
            _log_events(connection, [row], TrialStatus.RUNNING)
            return Lease(trial_id, worker, row.lease_token, row.lease_expires_at)

    def renew_lease(self, trial_id: int, token: int, lease_s: float) -> bool:
        changes = {
            "trial_id": trial_id,
            "token": token,
            "lease_expires_at": utc_now() + timedelta(seconds=lease_s),
        }
        with self._transaction() as connection:
            return connection.execute(_RENEW, changes).rowcount == 1

    def expire_leases(self, now: datetime | None = None, *, campaign_id: int | None = None) -> list[Trial]:
        changes: dict[str, Any] = {
            "now": now or utc_now(),
            "status": TrialStatus.INTERRUPTED,
            "label": FailureLabel.WORKER_LOST,
            "reason": "its worker stopped renewing the lease (the worker died or lost the database)",
            "finished_at": utc_now(),
        }
        statement = _EXPIRE
        if campaign_id is not None:
            statement, changes["in_campaign"] = _EXPIRE_IN_CAMPAIGN, campaign_id
        with self._transaction() as connection:
            rows = connection.execute(statement, changes).all()
            _log_events(connection, rows, TrialStatus.INTERRUPTED)
            return sorted((_trial(row) for row in rows), key=lambda t: t.id)

    def finish_trial(self, trial_id: int, result: TrialResult, *, token: int | None = None) -> Trial | None:
        changes = {
            "trial_id": trial_id,
            "status": result.status,
            "label": result.label,
            "score": result.score,
            "metrics": _encode_metrics(result.metrics),
            "curve": [_encode_metrics(point) for point in result.curve],
            "reason": result.reason,
            "exit_code": result.exit_code,
            "duration_s": result.duration_s,
            "log_tail": result.log_tail,
            "code_hash": result.code_hash,
            "test_score": result.test_score,
            "record": dict(result.record),
            "finished_at": utc_now(),
        }
        statement = _FINISH[result.status]
        if token is not None:
            statement, changes["token"] = _FINISH_FENCED[result.status], token
        with self._transaction() as connection:
            row = connection.execute(statement, changes).one_or_none()
            if row is None:
                self._require(connection, _TRIAL_BY_ID, {"trial_id": trial_id}, "trial")
                return None
            _log_events(connection, [row], result.status)
            return _trial(row)

    def interrupt_unfinished(self, campaign_id: int, label: FailureLabel, reason: str) -> list[Trial]:
        if label.status is not TrialStatus.INTERRUPTED:
            raise ValueError(f"{label} blames the candidate; interrupting needs worker_lost or cancelled")
        changes = {
            "in_campaign": campaign_id,
            "status": TrialStatus.INTERRUPTED,
            "label": label,
            "reason": reason,
            "finished_at": utc_now(),
        }
        with self._transaction() as connection:
            rows = connection.execute(_INTERRUPT, changes).all()
            _log_events(connection, rows, TrialStatus.INTERRUPTED)
            trials = sorted((_trial(row) for row in rows), key=lambda trial: trial.number)
            if not trials:
                self._require(connection, _CAMPAIGN_BY_ID, {"campaign_id": campaign_id}, "campaign")
            return trials

    def set_trial_analysis(self, trial_id: int, analysis: str) -> None:
        with self._transaction() as connection:
            if connection.execute(_SET_ANALYSIS, {"trial_id": trial_id, "analysis": analysis}).rowcount != 1:
                raise NotFound(f"no trial with id {trial_id}")

    def set_trial_flags(
        self, trial_id: int, *, pinned: bool | None = None, vetoed: bool | None = None
    ) -> Trial:
        changes: dict[str, Any] = {"trial_id": trial_id}
        if pinned is not None:
            changes["pinned"] = pinned
        if vetoed is not None:
            changes["vetoed"] = vetoed
        if len(changes) == 1:
            return self.get_trial(trial_id)
        with self._transaction() as connection:
            row = connection.execute(_SET_FLAGS, changes).one_or_none()
        if row is None:
            raise NotFound(f"no trial with id {trial_id}")
        return _trial(row)

    def trial_numbers(self, trial_ids: Collection[int]) -> dict[int, int]:
        statement = select(TrialRow.id, TrialRow.number).where(TrialRow.id.in_(list(trial_ids)))
        with self._reading() as connection:
            found = {row.id: row.number for row in connection.execute(statement)}
        if missing := set(trial_ids) - found.keys():
            raise NotFound(f"no trial with id {min(missing)}")
        return found

    def lineage_entries(self, campaign_id: int) -> list[LineageEntry]:
        parent, retried = aliased(TrialRow), aliased(TrialRow)
        statement = (
            select(
                TrialRow.number,
                parent.number.label("parent_number"),
                retried.number.label("retry_of_number"),
                TrialRow.status,
                TrialRow.label,
                TrialRow.score,
                TrialRow.pinned,
                TrialRow.vetoed,
                TrialRow.role,
                IdeaRow.hypothesis,
                IdeaRow.origin,
                IdeaRow.key,
            )
            .join(IdeaRow, IdeaRow.id == TrialRow.idea_id)
            .outerjoin(parent, parent.id == TrialRow.parent_id)
            .outerjoin(retried, retried.id == TrialRow.retry_of)
            .where(TrialRow.campaign_id == campaign_id)
            .order_by(TrialRow.number)
        )
        with self._reading() as connection:
            rows = connection.execute(statement).all()
            if not rows:
                self._require(connection, _CAMPAIGN_BY_ID, {"campaign_id": campaign_id}, "campaign")
        entries = []
        for (
            number,
            parent_number,
            retry_of,
            status,
            label,
            score,
            pinned,
            vetoed,
            role,
            hypothesis,
            origin,
            key,
        ) in rows:
            origin = IdeaOrigin(origin)  # rows unpacked by position: by name costs more than the rest
            entries.append(
                LineageEntry(
                    number=number,
                    parent=parent_number,
                    retry_of=retry_of,
                    status=TrialStatus(status),
                    label=FailureLabel(label) if label is not None else None,
                    score=score,
                    title=idea_title(origin, key, hypothesis),
                    origin=origin,
                    pinned=pinned,
                    vetoed=vetoed,
                    role=TrialRole(role),
                )
            )
        return entries

    def steered_trials(self, campaign_id: int) -> list[Trial]:
        with self._reading() as connection:
            return [_trial(row) for row in connection.execute(_STEERED, {"campaign_id": campaign_id})]

    def page_trials(self, campaign_id: int, query: TrialQuery) -> TrialPage:
        by_score = query.sort in (TrialSort.SCORE, TrialSort.SCORE_DESC)
        limit = max(1, min(query.limit, 1000))
        params: dict[str, Any] = {
            "campaign_id": campaign_id,
            "min_score": query.min_score,
            "max_score": query.max_score,
            "limit": limit + 1,  # one more tells whether a page follows
        }
        if query.after is not None:
            params["after_score"], params["after_number"] = _decode_cursor(query.after)
            if by_score and params["after_score"] is None:
                raise ConfigError(f"not a cursor of a page sorted by score: {query.after!r}")
        statement = _page_statement(
            tuple(sorted(set(query.statuses))),
            tuple(sorted(set(query.labels))),
            query.min_score is not None,
            query.max_score is not None,
            query.sort,
            query.after is not None,
            tuple(sorted(set(query.roles))),
        )
        with self._reading() as connection:
            rows = connection.execute(statement, params).all()
            if not rows:
                self._require(connection, _CAMPAIGN_BY_ID, {"campaign_id": campaign_id}, "campaign")
        trials = tuple(_brief(row, row[_BRIEF_WIDTH]) for row in rows[:limit])  # the parent's number
        last = trials[-1] if len(rows) > limit else None
        following = _encode_cursor(last.score if by_score else None, last.number) if last else None
        return TrialPage(trials, following)

    def ancestors(self, campaign_id: int, number: int) -> list[TrialBrief]:
        params = {"campaign_id": campaign_id, "number": number}
        with self._reading() as connection:
            rows = connection.execute(_ANCESTORS, params).all()
            if not rows and connection.execute(_TRIAL_BY_NUMBER, params).first() is None:
                raise NotFound(f"campaign {campaign_id} has no trial number {number}")
        chain: list[TrialBrief] = []
        for row in rows:  # root first: each one's parent is the one before
            chain.append(_brief(row, chain[-1].number if chain else None))
        return chain

    def last_event_id(self, campaign_id: int) -> int:
        statement = select(func.coalesce(func.max(TrialEventRow.id), 0)).where(
            TrialEventRow.campaign_id == campaign_id
        )
        with self._reading() as connection:
            return int(connection.execute(statement).scalar_one())

    def trial_events(self, campaign_id: int, *, after: int = 0, limit: int = 500) -> list[TrialEvent]:
        with self._reading() as connection:
            rows = connection.execute(
                _EVENTS_AFTER, {"campaign_id": campaign_id, "after": after, "limit": limit}
            ).all()
        return [
            TrialEvent(r.id, r.campaign_id, r.trial_id, r.number, TrialStatus(r.status), r.at) for r in rows
        ]

    def get_trial(self, trial_id: int) -> Trial:
        with self._reading() as connection:
            return _trial(self._require(connection, _TRIAL_BY_ID, {"trial_id": trial_id}, "trial"))

    def get_trial_by_number(self, campaign_id: int, number: int) -> Trial:
        with self._reading() as connection:
            row = connection.execute(
                _TRIAL_BY_NUMBER, {"campaign_id": campaign_id, "number": number}
            ).one_or_none()
            if row is None:
                self._require(connection, _CAMPAIGN_BY_ID, {"campaign_id": campaign_id}, "campaign")
                raise NotFound(f"campaign {campaign_id} has no trial number {number}")
            return _trial(row)

    def list_trials(
        self, campaign_id: int, *, statuses: Collection[TrialStatus] | None = None
    ) -> list[Trial]:
        params: dict[str, Any] = {"campaign_id": campaign_id}
        statement = _TRIALS_BY_NUMBER
        if statuses is not None:
            statement, params["statuses"] = _TRIALS_IN_STATUSES, sorted(statuses)
        with self._reading() as connection:
            trials = [_trial(row) for row in connection.execute(statement, params)]
            if not trials:
                self._require(connection, _CAMPAIGN_BY_ID, {"campaign_id": campaign_id}, "campaign")
            return trials

    def trial_seconds(self, campaign_id: int) -> float:
        statement = select(func.coalesce(func.sum(TrialRow.duration_s), 0.0)).where(
            TrialRow.campaign_id == campaign_id
        )
        with self._reading() as connection:
            return float(connection.execute(statement).scalar_one() or 0.0)

    def count_trials(self, campaign_id: int, *, budget_only: bool = False) -> dict[TrialStatus, int]:
        statement = _BUDGET_COUNTS if budget_only else _TRIAL_COUNTS
        with self._reading() as connection:
            rows = connection.execute(statement, {"campaign_id": campaign_id})
            counts = {TrialStatus(status): n for status, n in rows}
            if not counts:
                self._require(connection, _CAMPAIGN_BY_ID, {"campaign_id": campaign_id}, "campaign")
            return counts

    # patches ---------------------------------------------------------------------------------
    def add_patch(
        self,
        trial_id: int,
        *,
        attempt: int,
        diff: str,
        applied: bool,
        error: str = "",
        files: Sequence[str] = (),
        llm_call_id: int | None = None,
    ) -> Patch:
        values = {
            "trial_id": trial_id,
            "attempt": attempt,
            "diff": diff,
            "applied": applied,
            "error": error,
            "files": list(files),
            "llm_call_id": llm_call_id,
        }
        try:
            with self._transaction() as connection:
                return _patch(connection.execute(_INSERT_PATCH, values).one())
        except IntegrityError as exc:
            raise NotFound(f"no trial {trial_id} or LLM call {llm_call_id} to add a patch to") from exc

    def list_patches(self, trial_id: int) -> list[Patch]:
        with self._reading() as connection:
            patches = [_patch(row) for row in connection.execute(_PATCHES_BY_ATTEMPT, {"trial_id": trial_id})]
            if not patches:
                self._require(connection, _TRIAL_BY_ID, {"trial_id": trial_id}, "trial")
            return patches

    # LLM calls --------------------------------------------------------------------------------
    def add_llm_call(
        self,
        campaign_id: int,
        *,
        role: Role,
        model: str,
        template: str,
        prompt: Mapping[str, Any],
        response: str,
        error: str = "",
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        dollars: float | None = None,
        attempts: int = 1,
        duration_s: float = 0.0,
        idea_id: int | None = None,
        trial_id: int | None = None,
        surface: str = "",
    ) -> LLMCall:
        values = {
            "campaign_id": campaign_id,
            "role": role,
            "surface": surface,
            "model": model,
            "template": template,
            "prompt": dict(prompt),
            "response": response,
            "error": error,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cached_tokens": cached_tokens,
            "dollars": dollars,
            "attempts": attempts,
            "duration_s": duration_s,
            "idea_id": idea_id,
            "trial_id": trial_id,
        }
        try:
            with self._transaction() as connection:
                return _llm_call(connection.execute(_INSERT_LLM_CALL, values).one())
        except IntegrityError as exc:
            raise NotFound(
                f"no campaign {campaign_id}, idea {idea_id} or trial {trial_id} to record an LLM call for"
            ) from exc

    def get_llm_call(self, call_id: int) -> LLMCall:
        with self._reading() as connection:
            return _llm_call(self._require(connection, _LLM_CALL_BY_ID, {"call_id": call_id}, "LLM call"))

    def reject_llm_call(self, call_id: int, error: str) -> None:
        with self._transaction() as connection:
            if connection.execute(_REJECT_LLM_CALL, {"call_id": call_id, "error": error}).rowcount != 1:
                raise NotFound(f"no LLM call with id {call_id}")

    def list_llm_calls(
        self, campaign_id: int, *, idea_id: int | None = None, trial_id: int | None = None
    ) -> list[LLMCall]:
        statement = _LLM_CALLS
        if idea_id is not None:
            statement = statement.where(LLMCallRow.idea_id == idea_id)
        if trial_id is not None:
            statement = statement.where(LLMCallRow.trial_id == trial_id)
        with self._reading() as connection:
            return [_llm_call(row) for row in connection.execute(statement, {"campaign_id": campaign_id})]

    def llm_usage(self, campaign_id: int) -> dict[Role, Usage]:
        with self._reading() as connection:
            rows = connection.execute(_LLM_USAGE, {"campaign_id": campaign_id})
            return {
                Role(role): Usage(int(calls), int(i), int(o), int(c), float(d or 0.0), int(unpriced))
                for role, calls, i, o, c, d, unpriced in rows
            }

    # API tokens ------------------------------------------------------------------------------
    def add_token(self, *, name: str, scope: Scope, token_hash: str, prefix: str) -> ApiToken:
        values = {
            "name": name,
            "scope": scope,
            "token_hash": token_hash,
            "prefix": prefix,
            "created_at": utc_now(),
        }
        with self._transaction() as connection:
            return _token(connection.execute(_INSERT_TOKEN, values).one())

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        with self._reading() as connection:
            row = connection.execute(_TOKEN_BY_HASH, {"token_hash": token_hash}).one_or_none()
        return _token(row) if row is not None else None

    def revoke_token(self, token_id: int) -> ApiToken:
        with self._transaction() as connection:
            row = connection.execute(
                _REVOKE_TOKEN, {"token_id": token_id, "revoked_at": utc_now()}
            ).one_or_none()
        if row is None:
            raise NotFound(f"no API token with id {token_id}")
        return _token(row)

    def list_tokens(self) -> list[ApiToken]:
        with self._reading() as connection:
            return [_token(row) for row in connection.execute(_TOKENS)]

    # workers ---------------------------------------------------------------------------------
    def register_worker(self, name: str, *, queues: Sequence[str], capacity: Mapping[str, Any]) -> None:
        values = {
            "queues": list(queues),
            "capacity": dict(capacity),
            "started_at": utc_now(),
            "heartbeat_at": utc_now(),
        }
        with self._transaction() as connection:
            if connection.execute(_WORKER_BY_NAME, {"worker_name": name}).one_or_none() is None:
                connection.execute(insert(WorkerRow), {"name": name, **values})
            else:
                connection.execute(_UPDATE_WORKER, {"worker_name": name, **values})

    def worker_heartbeat(self, name: str) -> None:
        with self._transaction() as connection:
            connection.execute(_UPDATE_WORKER, {"worker_name": name, "heartbeat_at": utc_now()})

    def forget_worker(self, name: str) -> None:
        with self._transaction() as connection:
            connection.execute(delete(WorkerRow).where(WorkerRow.name == name))

    def list_workers(self) -> list[WorkerInfo]:
        with self._reading() as connection:
            return [
                WorkerInfo(
                    name=row.name,
                    queues=tuple(row.queues),
                    capacity=dict(row.capacity),
                    started_at=row.started_at,
                    heartbeat_at=row.heartbeat_at,
                )
                for row in connection.execute(_WORKERS_BY_NAME)
            ]

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str) -> SqlStore:
    """A store whose schema is at head: creates the SQLite folder and migrates only when behind."""
    shown = safe_url(url)
    try:
        sqlite_file = _sqlite_file(url)
    except ArgumentError as exc:
        raise StoreError(f"cannot open a database at {shown}: {_first_line(exc)}") from exc
    if sqlite_file is not None:
        try:
            sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for {shown}: {exc}") from exc
    store = SqlStore(url)
    try:
        _migrate_to_head(store, url)
    except BaseException:
        store.close()
        raise
    return store


def _migrate_to_head(store: SqlStore, url: str) -> None:
    try:
        current = migrate.current_revision(store.engine)  # one small query
        head = migrate.head_revision()
        if current == head:
            return
        if current is not None and not migrate.is_known_revision(current):
            raise StoreError(
                f"{store.url} is at schema revision {current!r}, which this autoresearch does not know "
                f"(its newest is {head!r}): it was written by a newer version; upgrade autoresearch"
            )
        # Concurrent callers take turns inside (see migrate.migration_engine and migrations/env.py).
        migrate.upgrade(url)
    except (OperationalError, InterfaceError) as exc:
        raise _unusable(store.url, exc) from exc
    except CommandError as exc:
        raise StoreError(f"cannot migrate the database at {store.url}: {_first_line(exc)}") from exc
