"""The SQL storage backend: SQLite by default, PostgreSQL for a shared service."""

from autoresearch.adapters.db.store import SqlStore, open_store

__all__ = ["SqlStore", "open_store"]
