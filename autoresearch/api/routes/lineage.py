"""A campaign's lineage: the parent -> child graph over all its trials, from one query."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from autoresearch.api.dependencies import CampaignIdDep, StoreDep
from autoresearch.api.problems import problems
from autoresearch.api.schemas import LineagePublic
from autoresearch.api.security import CAN_READ
from autoresearch.domain.model import LineageEntry

router = APIRouter(prefix="/campaigns/{ref}/lineage", tags=["lineage"])


class _Graph(TypedDict):
    """LineagePublic, with the store's entries (LineageNode's fields, by name) as the nodes."""

    nodes: list[LineageEntry]
    edges: list[tuple[int, int]]


# Serialized straight from the store's entries: for 10,000 trials, building LineageNode models first took
# longer than the query.
_GRAPH = TypeAdapter(_Graph)


@router.get("", dependencies=[CAN_READ], responses=problems(401, 404), response_model=LineagePublic)
async def get_lineage(campaign_id: CampaignIdDep, store: StoreDep) -> Response:
    """Every trial as a node (with its idea's title and origin) and every parent -> child edge. One query
    whatever the campaign's size."""

    def render() -> bytes:
        entries = store.lineage_entries(campaign_id)
        edges = [(entry.parent, entry.number) for entry in entries if entry.parent is not None]
        return _GRAPH.dump_json({"nodes": entries, "edges": edges})

    return Response(await run_in_threadpool(render), media_type="application/json")
