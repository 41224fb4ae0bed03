"""A campaign's ideas, and ideas people seed: the controller implements a seeded idea on its parent
before it proposes anything new."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from autoresearch.agents.config import AgentsConfig
from autoresearch.api.dependencies import CampaignDep, NumbersDep, SettingsDep, StoreDep
from autoresearch.api.numbers import TrialNumbers
from autoresearch.api.problems import problems
from autoresearch.api.routes.environments import environment_named
from autoresearch.api.schemas import IdeaCreate, IdeaPublic, campaign_path
from autoresearch.api.security import CAN_READ, CAN_WRITE
from autoresearch.domain.diffs import parse_diff, touched_paths
from autoresearch.domain.model import Campaign, CampaignStatus, Idea, IdeaOrigin, Trial
from autoresearch.errors import AutoresearchError, ConfigError, Conflict, NotFound, PatchError
from autoresearch.services.store import Store
from autoresearch.settings import Settings

router = APIRouter(prefix="/campaigns/{ref}/ideas", tags=["ideas"])
IdeaId = Annotated[int, Path(ge=1, description="The idea's id.")]


def idea_in(store: Store, campaign: Campaign, idea_id: int) -> Idea:
    try:
        idea = store.get_idea(idea_id)
    except NotFound:
        idea = None
    if idea is None or idea.campaign_id != campaign.id:
        raise NotFound(f"campaign {campaign.name!r} has no idea {idea_id}")
    return idea


def idea_public(store: Store, numbers: TrialNumbers, idea: Idea) -> IdeaPublic:
    first = store.first_trial_of(idea.id)
    parents = numbers.of(store, idea.parent_trial_ids)
    return IdeaPublic.of(idea, parents, first.number if first is not None else None)


@router.get("", dependencies=[CAN_READ], responses=problems(401, 404))
def list_ideas(campaign: CampaignDep, store: StoreDep, known: NumbersDep) -> list[IdeaPublic]:
    """In order of id, with the trial each became (two queries, whatever the campaign's size)."""
    trials = store.list_trials(campaign.id)
    known.learn(trials)
    numbers = {t.id: t.number for t in trials}
    first = {t.idea_id: t.number for t in trials if t.retry_of is None}
    return [IdeaPublic.of(idea, numbers, first.get(idea.id)) for idea in store.list_ideas(campaign.id)]


@router.get("/{idea_id}", dependencies=[CAN_READ], responses=problems(401, 404, 422))
def get_idea(idea_id: IdeaId, campaign: CampaignDep, store: StoreDep, numbers: NumbersDep) -> IdeaPublic:
    return idea_public(store, numbers, idea_in(store, campaign, idea_id))


# seeding ---------------------------------------------------------------------------------------
def seed_idea(store: Store, settings: Settings, campaign: Campaign, body: IdeaCreate) -> Idea:
    if campaign.status in (CampaignStatus.FINISHED, CampaignStatus.CANCELLED):
        raise Conflict(f"campaign {campaign.name!r} is {campaign.status}: it will run no more ideas")
    if body.diff.strip():
        check_diff(settings, campaign, body.diff)
    elif AgentsConfig.of(campaign.agents) is None:
        raise ConfigError(
            f"diff: campaign {campaign.name!r} has no LLM implementer to write the patch: send the diff "
            "against the environment's baseline code"
        )
    parent = parent_trial(store, campaign, body.parent)
    return store.add_idea(
        campaign.id,
        hypothesis=body.hypothesis,
        origin=IdeaOrigin.USER,
        surface=body.surface,
        parent_trial_ids=(parent.id,),
        diff=body.diff,
        rationale=body.rationale,
    )


def check_diff(settings: Settings, campaign: Campaign, diff: str) -> None:
    """A diff must parse, and must leave the evaluator alone (it would be `illegal_edit` anyway)."""
    try:
        parse_diff(diff)
    except PatchError as exc:
        raise ConfigError(f"diff: {exc}") from exc
    try:
        env = environment_named(settings, campaign.environment)
    except AutoresearchError:
        return  # the environment is gone from this host: the controller's legality check will judge
    protected = sorted(p for p in touched_paths(diff) if env.is_protected(p))
    if protected:
        raise ConfigError(f"diff: it edits {', '.join(protected)}, which the environment protects")


def parent_trial(store: Store, campaign: Campaign, number: int) -> Trial:
    try:
        parent = store.get_trial_by_number(campaign.id, number)
    except NotFound:
        if number == 0:
            raise Conflict(
                f"campaign {campaign.name!r} has no baseline trial yet; its controller makes it first"
            ) from None
        raise ConfigError(f"parent: campaign {campaign.name!r} has no trial number {number}") from None
    if parent.vetoed:
        raise Conflict(f"trial {number} is vetoed as a parent; unveto it first")
    return parent


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[CAN_WRITE],
    responses=problems(401, 403, 404, 409, 422),
)
def create_idea(
    body: IdeaCreate,
    campaign: CampaignDep,
    store: StoreDep,
    numbers: NumbersDep,
    settings: SettingsDep,
    response: Response,
) -> IdeaPublic:
    """Seed an idea. It waits (`trial` null) until the controller implements it on its parent."""
    idea = seed_idea(store, settings, campaign, body)
    response.headers["Location"] = f"{campaign_path(campaign)}/ideas/{idea.id}"
    return idea_public(store, numbers, idea)
