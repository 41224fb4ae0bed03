"""The HTTP API: a FastAPI app over the store, every route under `/api/v1`.

The store and the artifact store are opened once, when the app starts. The store blocks, so routes are
plain functions that FastAPI runs in its thread pool; only the event stream is async (it waits between
reads of the store without holding a thread).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from uvicorn.supervisors import Multiprocess

from autoresearch import __version__
from autoresearch.adapters.artifacts import open_artifacts
from autoresearch.adapters.db import open_store
from autoresearch.adapters.db.store import safe_url
from autoresearch.api.numbers import TrialNumbers
from autoresearch.api.problems import document_problems, install_problem_handlers
from autoresearch.api.routes import ROUTERS
from autoresearch.api.schemas import API_PREFIX
from autoresearch.api.settings import ApiSettings, load_api_settings
from autoresearch.dashboard import install as install_dashboard
from autoresearch.settings import Settings, load_settings

log = logging.getLogger(__name__)

DESCRIPTION = """\
Submit research goals, follow campaigns as they run, steer them (pause, resume, cancel, seed ideas,
pin or veto parents), browse trials and their lineage, and download the code each trial ran.

Send `Authorization: Bearer <token>`. Scopes: `read` < `write` < `admin`. Every error is an RFC 9457
problem document (`application/problem+json`). See docs/api.md.
"""


def create_app(settings: Settings | None = None, api_settings: ApiSettings | None = None) -> FastAPI:
    """The API over the database `settings` name (default: the environment's settings)."""
    settings = settings or load_settings()
    api_settings = api_settings or load_api_settings()
    url = settings.resolved_database_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = open_store(url)  # migrates to head when behind
        try:
            yield
        finally:
            app.state.store.close()

    app = FastAPI(
        title="autoresearch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.database = safe_url(url)
    app.state.settings = settings
    app.state.api_settings = api_settings
    app.state.artifacts = open_artifacts(settings)
    app.state.trial_numbers = TrialNumbers()
    app.state.event_streams = 0  # event streams open now
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    install_problem_handlers(app)
    install_dashboard(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = document_problems(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if api_settings.anonymous_reads:
        log.warning("anonymous reads are on: anyone who reaches the API can read every campaign")
    return app


def serve(host: str, port: int, settings: Settings, workers: int = 1) -> None:
    """Run the API with uvicorn until interrupted; with several worker processes, each builds its app
    from the environment's settings (as the CLI read them)."""
    # Open (and migrate) the database before binding the port: a bad URL is then one StoreError
    # line from the CLI, not a traceback from inside uvicorn's startup.
    open_store(settings.resolved_database_url).close()
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
        return
    config = uvicorn.Config(
        "autoresearch.api.app:create_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
    )
    # uvicorn binds a worker pool's socket without naming TCP as its protocol, so asyncio leaves Nagle on
    # for each connection and every keep-alive response waits ~40 ms for a delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
