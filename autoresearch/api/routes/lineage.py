"""A campaign's lineage: the parent -> child graph over all its trials, from one query."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from autoresearch.api.dependencies import CampaignDep, StoreDep
from autoresearch.api.problems import problems
from autoresearch.api.schemas import LineagePublic
from autoresearch.api.security import CAN_READ

router = APIRouter(prefix="/campaigns/{ref}/lineage", tags=["lineage"])


@router.get("", dependencies=[CAN_READ], responses=problems(401, 404), response_model=LineagePublic)
async def get_lineage(campaign: CampaignDep, store: StoreDep) -> Response:
    """Every trial as a node (with its idea's title and origin) and every parent -> child edge. One query
    whatever the campaign's size."""

    def render() -> bytes:
        # Serialized straight from the store's entries (LineageNode's fields, by name): for a campaign of
        # 10,000 trials, building the models first took longer than the query.
        entries = store.lineage_entries(campaign.id)
        edges = [(entry.parent, entry.number) for entry in entries if entry.parent is not None]
        return to_json({"nodes": entries, "edges": edges})

    return Response(await run_in_threadpool(render), media_type="application/json")
