"""The migrations build exactly the schema the models describe, and run only when needed."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, create_engine
from sqlalchemy.pool import NullPool

from autoresearch.adapters.db import migrate, open_store
from autoresearch.adapters.db.models import Base
from autoresearch.errors import StoreError


def schema_drift(url: str, metadata: MetaData) -> list[Any]:
    """What autogenerate would write to bring the database at `url` to `metadata`."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrations_build_the_schema_the_models_describe(database_url: str) -> None:
    migrate.upgrade(database_url)

    assert migrate.current_revision(database_url) == migrate.head_revision()
    assert schema_drift(database_url, Base.metadata) == []
    command.check(migrate.alembic_config(database_url))  # what `alembic check` runs, through env.py


def test_a_model_change_without_a_migration_is_detected(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["trials"].append_column(Column("gpu_hours", Integer, nullable=True))

    diff = schema_drift(sqlite_url, drifted)

    assert [(op[0], op[2], op[3].name) for op in diff] == [("add_column", "trials", "gpu_hours")]


def test_open_store_on_a_migrated_database_keeps_data_and_does_not_migrate(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = open_store(database_url)
    campaign = first.create_campaign(
        name="kept",
        environment="tiny-lm",
        preset="cpu",
        strategy="evolve",
        goal="",
        trial_budget=3,
        concurrency=1,
        seed=0,
    )
    first.close()

    def no_migrations(url: str, revision: str = "head") -> None:
        raise AssertionError("open_store migrated a database already at head")

    monkeypatch.setattr(migrate, "upgrade", no_migrations)
    again = open_store(database_url)
    try:
        assert again.get_campaign("kept") == campaign
    finally:
        again.close()


def _open_and_report(url: str, ready: Any, results: Any) -> None:
    ready.wait()
    try:
        open_store(url).close()
        results.put("ok")
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_fresh_database_together_all_succeed(database_url: str) -> None:
    # Several workers starting at once on a new database: one migrates, the others wait for it.
    context = multiprocessing.get_context("fork")
    n = 4
    ready, results = context.Barrier(n), context.Queue()
    workers = [
        context.Process(target=_open_and_report, args=(database_url, ready, results)) for _ in range(n)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert [results.get(timeout=1) for _ in range(n)] == ["ok"] * n
    assert migrate.current_revision(database_url) == migrate.head_revision()


def test_database_from_a_newer_version_is_refused(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    engine = create_engine(sqlite_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()

    with pytest.raises(StoreError, match="newer version"):
        open_store(sqlite_url)
