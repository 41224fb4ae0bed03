"""The HTTP API (FastAPI) over the store: `autoresearch api` serves it."""

from autoresearch.api.app import create_app, serve

__all__ = ["create_app", "serve"]
