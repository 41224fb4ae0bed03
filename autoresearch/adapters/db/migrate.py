"""Alembic, driven from code: the migrations folder ships with the package (see settings.bundled_path)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import NullPool

from autoresearch.settings import bundled_path


def alembic_config(url: str | None = None) -> Config:
    """A Config pointing at the bundled migrations, with `sqlalchemy.url` set when a URL is given."""
    config = Config()
    config.set_main_option("script_location", str(bundled_path("migrations")))
    if url is not None:
        # Config values go through ConfigParser interpolation: a %-encoded password must be escaped.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@lru_cache(maxsize=1)
def _script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this version of autoresearch ships."""
    head = _script_directory().get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {bundled_path('migrations')}")
    return head


def is_known_revision(revision: str) -> bool:
    """False for a revision written by a newer autoresearch (or by something else)."""
    return any(script.revision == revision for script in _script_directory().walk_revisions())


def current_revision(bind: str | Engine) -> str | None:
    """The revision the database is at (None when it has never been migrated). One small query."""
    engine = bind if isinstance(bind, Engine) else create_engine(bind, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if engine is not bind:
            engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (head by default)."""
    command.upgrade(alembic_config(url), revision)


def migration_engine(url: str) -> Engine:
    """The engine migrations run on (built by migrations/env.py).

    On SQLite each migration run is one `BEGIN IMMEDIATE` transaction, so two processes that start
    on a fresh file do not both create the tables, and a failed migration leaves nothing behind.
    Foreign keys stay off (SQLite's default) because batch mode rebuilds a table by copy, drop and
    rename, and with them on the drop would cascade into the rows that point at it.
    """
    engine = create_engine(url, poolclass=NullPool)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _let_sqlalchemy_begin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # the driver would not BEGIN before DDL
            dbapi_connection.execute("PRAGMA busy_timeout = 30000")

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
