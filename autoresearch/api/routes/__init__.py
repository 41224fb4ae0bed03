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

# The app includes each under API_PREFIX. Not one router of routers: FastAPI matches a request against
# every level of nesting again, which cost more CPU than the rest of a small request.
ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router
    for module in (health, tokens, environments, campaigns, trials, ideas, lineage, events, reports)
)

__all__ = ["ROUTERS"]
