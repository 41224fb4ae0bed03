"""Is the API up, and which database does it serve? Open to everyone (load balancers ask it)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request

from autoresearch import __version__
from autoresearch.api.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request) -> HealthPublic:
    """Needs no token."""
    return HealthPublic(version=__version__, database=request.app.state.database, process=os.getpid())
