"""The HTTP API: a FastAPI app over the store, every route under `/api/v1`.

Errors are RFC 9457 problem documents (`application/problem+json`), so a client reads one shape
for a missing campaign and for an unknown route alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from autoresearch import __version__
from autoresearch.adapters.db import open_store
from autoresearch.adapters.db.store import safe_url
from autoresearch.domain.model import CampaignStatus, TrialStatus
from autoresearch.errors import NotFound
from autoresearch.services.store import Store
from autoresearch.settings import Settings, load_settings

PROBLEM_JSON = "application/problem+json"


# schemas -------------------------------------------------------------------------------------
class HealthPublic(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    database: str  # the URL with its password hidden


class CampaignPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    environment: str
    preset: str
    strategy: str
    goal: str
    status: CampaignStatus
    trial_budget: int
    concurrency: int
    created_at: datetime


class CampaignDetailPublic(CampaignPublic):
    counts: dict[TrialStatus, int]  # every status, 0 when no trial has it


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"  # no more semantics than the status code itself
    title: str
    status: int
    detail: str


PROBLEM_RESPONSE: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "No such campaign.",
        "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema()}},
    }
}


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers, media_type=PROBLEM_JSON)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return problem(HTTPStatus.NOT_FOUND.value, str(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (an unknown route, a wrong method) as problem documents too."""
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail), exc.headers)


# dependencies --------------------------------------------------------------------------------
def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(_store)]


# routes --------------------------------------------------------------------------------------
# Handlers are plain functions: the store blocks, so FastAPI runs them in its thread pool.
router = APIRouter(prefix="/api/v1")


@router.get("/health")
def health(request: Request) -> HealthPublic:
    return HealthPublic(version=__version__, database=request.app.state.database)


@router.get("/campaigns")
def list_campaigns(store: StoreDep) -> list[CampaignPublic]:
    """Newest first."""
    return [CampaignPublic.model_validate(campaign) for campaign in store.list_campaigns()]


@router.get("/campaigns/{ref}", responses=PROBLEM_RESPONSE)
def get_campaign(ref: str, store: StoreDep) -> CampaignDetailPublic:
    """By name, or by id; with how many of its trials are in each status."""
    campaign = store.get_campaign(ref)
    counts = store.count_trials(campaign.id)
    return CampaignDetailPublic(
        **CampaignPublic.model_validate(campaign).model_dump(),
        counts={status: counts.get(status, 0) for status in TrialStatus},
    )


# the app -------------------------------------------------------------------------------------
def create_app(settings: Settings | None = None) -> FastAPI:
    """The API over the database `settings` name (default: the environment's settings)."""
    settings = settings or load_settings()
    url = settings.resolved_database_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = open_store(url)  # migrates to head when behind
        try:
            yield
        finally:
            app.state.store.close()

    app = FastAPI(title="autoresearch", version=__version__, lifespan=lifespan)
    app.state.database = safe_url(url)
    app.include_router(router)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(HTTPException, _http_error)
    return app


def serve(host: str, port: int, settings: Settings) -> None:
    """Run the API with uvicorn until interrupted."""
    # Open (and migrate) the database before binding the port: a bad URL is then one StoreError
    # line from the CLI, not a traceback from inside uvicorn's startup.
    open_store(settings.resolved_database_url).close()
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
