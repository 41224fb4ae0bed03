"""Alembic environment: the URL comes from the Config (`sqlalchemy.url`) or `-x url=...` on the CLI."""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import text

from autoresearch.adapters.db.migrate import migration_engine
from autoresearch.adapters.db.models import Base, UtcDateTime

config = context.config
target_metadata = Base.metadata

# Held for the whole migration so two processes starting on one PostgreSQL database take turns.
POSTGRES_LOCK_KEY = 0x6175746F72657365  # "autorese"

if config.config_file_name is not None:  # the alembic CLI; from code, leave the app's logging alone
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: pass -x url=sqlite:///path/to/autoresearch.db")
    return url


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Write our column types as plain SQLAlchemy ones, so a migration never imports the app."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure_options() -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "render_as_batch": True,  # SQLite cannot ALTER most things; batch mode works on both
        "compare_type": True,
        "render_item": render_item,
    }


def run_migrations_offline() -> None:
    context.configure(url=database_url(), literal_binds=True, **configure_options())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = migration_engine(database_url())
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, transactional_ddl=True, **configure_options())
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_LOCK_KEY})
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
