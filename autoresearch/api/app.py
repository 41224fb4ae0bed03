"""The HTTP API: a FastAPI app over the store, every route under `/api/v1`.

The store and the artifact store are opened once, when the app starts. The store blocks, so most routes
are plain functions that FastAPI runs in its thread pool. The busiest reads (pages of trials, a trial,
its ancestors, the lineage) are async and take one explicit hop there for all their store calls; a hop
per dependency cost more than the reads (see `dependencies`). The event stream waits between reads of
the store without holding a thread.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from autoresearch import __version__
from autoresearch.adapters.artifacts import open_artifacts
from autoresearch.adapters.db import open_store
from autoresearch.adapters.db.store import safe_url
from autoresearch.adapters.llm.servers import listed_servers
from autoresearch.api.body_cap import BodyCap
from autoresearch.api.numbers import TrialNumbers
from autoresearch.api.problems import document_problems, install_problem_handlers
from autoresearch.api.routes import ROUTERS
from autoresearch.api.schemas import API_PREFIX
from autoresearch.api.settings import ApiSettings, load_api_settings
from autoresearch.dashboard import install as install_dashboard
from autoresearch.errors import AutoresearchError, ConfigError
from autoresearch.settings import Settings, load_settings

log = logging.getLogger(__name__)

DESCRIPTION = """\
Submit research goals, follow campaigns as they run, steer them (pause, resume, cancel, seed ideas,
pin or veto parents), browse trials and their lineage, and download the code each trial ran.

Send `Authorization: Bearer <token>`. Scopes: `read` < `write` < `admin`. Every error is an RFC 9457
problem document (`application/problem+json`). A request body over the server's cap
(AUTORESEARCH_API_MAX_BODY_BYTES) is a 413 before its token is checked. See docs/api.md.
"""


def create_app(settings: Settings | None = None, api_settings: ApiSettings | None = None) -> FastAPI:
    """The API over the database `settings` name (default: the environment's settings)."""
    settings = settings or load_settings()
    api_settings = api_settings or load_api_settings()
    listed_servers(settings.llm_base_urls)  # a malformed list stops the API here, not a campaign later
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
    app.state.campaign_ids = {}  # campaign name -> id (see dependencies._campaign_id)
    app.state.event_streams = 0  # event streams open now
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    install_problem_handlers(app)
    install_dashboard(app)
    # Outermost of our own: a body over the cap is refused before routing, parsing or the token check.
    app.add_middleware(BodyCap, max_bytes=settings.api_max_body_bytes)

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
    _listener(host, port, shared=False).close()  # a port already taken is one clear error, here
    # Each worker listens on a socket of its own on the port (SO_REUSEPORT) and the kernel spreads new
    # connections over them evenly. On one shared socket, the worker that woke first accepted a whole
    # burst: 20 clients connecting at once all went to one of two workers, and stayed there.
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_worker, args=(host, port), name=f"api-{n}") for n in range(workers)]
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    for process in processes:
        process.start()
    try:
        while not stopping.wait(0.5):
            for process in processes:
                if not process.is_alive():
                    raise AutoresearchError(
                        f"API worker {process.name} (pid {process.pid}) exited with {process.exitcode}:"
                        " stopping the others"
                    )
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # uvicorn shuts down gracefully on SIGTERM
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


def _worker(host: str, port: int) -> None:
    """One worker process of `serve`: uvicorn on a socket of its own."""
    config = uvicorn.Config("autoresearch.api.app:create_app", factory=True, log_level="info")
    uvicorn.Server(config).run(sockets=[_listener(host, port, shared=True)])


def _listener(host: str, port: int, *, shared: bool) -> socket.socket:
    """A socket bound to the address; `shared`: one of several, each in a worker, on the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # TCP named as the protocol: asyncio then turns Nagle off for each connection. Without, every
    # keep-alive response waited ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock
