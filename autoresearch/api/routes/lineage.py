"""A campaign's lineage: the parent -> child graph over all its trials, from one query."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter

from autoresearch.api.dependencies import CampaignDep, StoreDep
from autoresearch.api.problems import problems
from autoresearch.api.schemas import LineageNode, LineagePublic
from autoresearch.api.security import CAN_READ

router = APIRouter(prefix="/campaigns/{ref}/lineage", tags=["lineage"])


@router.get("", dependencies=[CAN_READ], responses=problems(401, 404))
def get_lineage(campaign: CampaignDep, store: StoreDep) -> LineagePublic:
    """Every trial as a node (with its idea's title and origin) and every parent -> child edge. One query
    whatever the campaign's size."""
    nodes = [LineageNode(**dataclasses.asdict(entry)) for entry in store.lineage_entries(campaign.id)]
    edges = [(node.parent, node.number) for node in nodes if node.parent is not None]
    return LineagePublic(nodes=nodes, edges=edges)
