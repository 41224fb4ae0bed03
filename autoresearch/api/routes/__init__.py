"""The API's routes, one module per resource; every path is under `/api/v1`."""

from __future__ import annotations

from fastapi import APIRouter

from autoresearch.api.routes import (
    campaigns,
    environments,
    events,
    health,
    ideas,
    lineage,
    reports,
    tokens,
    trials,
)

router = APIRouter(prefix="/api/v1")
for module in (health, tokens, environments, campaigns, ideas, trials, lineage, events, reports):
    router.include_router(module.router)

__all__ = ["router"]
