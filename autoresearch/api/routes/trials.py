"""A campaign's trials by number: pages of them, one in full, its ancestors, the code it ran, and the
pins and vetoes people put on parents."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from autoresearch.adapters.artifacts import ArtifactStore, bundle_key
from autoresearch.api.dependencies import (
    ArtifactsDep,
    CampaignDep,
    CampaignIdDep,
    NumberPath,
    NumbersDep,
    StoreDep,
    TrialDep,
)
from autoresearch.api.numbers import TrialNumbers
from autoresearch.api.problems import content, problems
from autoresearch.api.routes.ideas import idea_public
from autoresearch.api.schemas import (
    LLMCallSummary,
    PatchPublic,
    TrialPagePublic,
    TrialPublic,
    TrialSummary,
    campaign_path,
    trial_summary,
)
from autoresearch.api.security import CAN_READ, CAN_WRITE
from autoresearch.domain.model import (
    Campaign,
    FailureLabel,
    Patch,
    Trial,
    TrialQuery,
    TrialSort,
    TrialStatus,
)
from autoresearch.errors import Conflict, NotFound
from autoresearch.services.reports import call_dict, calls_behind, lineage_of
from autoresearch.services.store import Store

router = APIRouter(prefix="/campaigns/{ref}/trials", tags=["trials"])
MAX_PAGE = 200
_CODE_HASH = re.compile(r"[0-9a-f]{64}")  # a sha256: the only thing an artifact key is made from here


# reading ---------------------------------------------------------------------------------------
@router.get("", dependencies=[CAN_READ], responses=problems(401, 404, 422))
async def list_trials(
    campaign_id: CampaignIdDep,
    store: StoreDep,
    status: Annotated[list[TrialStatus] | None, Query(description="Only these statuses; repeatable.")] = None,
    label: Annotated[
        list[FailureLabel] | None, Query(description="Only these failure labels; repeatable.")
    ] = None,
    min_score: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    max_score: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    sort: Annotated[
        TrialSort,
        Query(description="By number or score, `-` for descending; by score leaves unscored ones out."),
    ] = TrialSort.NUMBER,
    after: Annotated[
        str | None, Query(max_length=500, description="The `next` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> TrialPagePublic:
    """One page of the campaign's trials. Follow `next` until it is null: every trial that matches comes
    exactly once, even while new trials are added."""
    query = TrialQuery(
        statuses=tuple(status or ()),
        labels=tuple(label or ()),
        min_score=min_score,
        max_score=max_score,
        sort=sort,
        after=after,
        limit=limit,
    )
    page = await run_in_threadpool(store.page_trials, campaign_id, query)
    return TrialPagePublic(items=[trial_summary(t, t.parent) for t in page.trials], next=page.next)


def bundle_path(campaign: Campaign, trial: Trial) -> str | None:
    if not trial.code_hash:
        return None
    return f"{campaign_path(campaign)}/trials/{trial.number}/bundle"


def trial_public(store: Store, numbers: TrialNumbers, campaign: Campaign, trial: Trial) -> TrialPublic:
    idea = store.get_idea(trial.idea_id)
    lineage = lineage_of(store, trial)
    return TrialPublic(
        **trial_summary(trial, lineage[-2] if len(lineage) > 1 else None).model_dump(),
        idea=idea_public(store, numbers, idea),
        reason=trial.reason,
        exit_code=trial.exit_code,
        metrics=dict(trial.metrics),
        curve=[dict(point) for point in trial.curve],
        diff=trial.code_diff,
        log_tail=trial.log_tail,
        code_hash=trial.code_hash,
        bundle=bundle_path(campaign, trial),
        analysis=trial.analysis,
        retry_of=numbers.number(store, trial.retry_of),
        confirms=numbers.number(store, trial.confirms),
        test_score=trial.test_score,
        record=dict(trial.record),
        lineage=lineage,
        patches=[_patch(p) for p in store.list_patches(trial.id)],
        llm_calls=[LLMCallSummary.model_validate(call_dict(c)) for c in calls_behind(store, trial, idea)],
    )


def _patch(patch: Patch) -> PatchPublic:
    return PatchPublic(
        attempt=patch.attempt,
        diff=patch.diff,
        applied=patch.applied,
        accepted=patch.accepted,
        error=patch.error,
        files=list(patch.files),
    )


@router.get("/{number}", dependencies=[CAN_READ], responses=problems(401, 404, 422))
async def get_trial(
    campaign: CampaignDep, number: NumberPath, store: StoreDep, numbers: NumbersDep
) -> TrialPublic:
    """The trial in full: idea, diff, metrics, curve, log tail, patch attempts and LLM calls."""

    def read() -> TrialPublic:
        return trial_public(store, numbers, campaign, store.get_trial_by_number(campaign.id, number))

    return await run_in_threadpool(read)


@router.get("/{number}/ancestors", dependencies=[CAN_READ], responses=problems(401, 404, 422))
async def list_ancestors(
    campaign_id: CampaignIdDep, number: NumberPath, store: StoreDep
) -> list[TrialSummary]:
    """The trial's parent, its parent's parent... root (the baseline) first; empty for the baseline."""
    chain = await run_in_threadpool(store.ancestors, campaign_id, number)
    return [trial_summary(t, t.parent) for t in chain]


def bundle_of(artifacts: ArtifactStore, trial: Trial) -> bytes:
    """The code the trial ran, from the artifact store; the key comes from the stored hash alone."""
    if not trial.code_hash:
        raise NotFound(f"trial {trial.number} has no code bundle: it never ran")
    if not _CODE_HASH.fullmatch(trial.code_hash):  # a row written by something else: never a key
        raise NotFound(f"trial {trial.number} has no code bundle")
    try:
        return artifacts.get(bundle_key(trial.code_hash))
    except NotFound:
        raise NotFound(f"trial {trial.number}'s code bundle is not in the artifact store") from None


@router.get(
    "/{number}/bundle",
    dependencies=[CAN_READ],
    response_class=Response,
    responses=content(
        "application/gzip",
        "The code the trial ran, as a tar.gz of the editable files.",
        {"type": "string", "format": "binary"},
    )
    | problems(401, 404, 422, 503),
)
def download_bundle(trial: TrialDep, artifacts: ArtifactsDep) -> Response:
    data = bundle_of(artifacts, trial)
    return Response(
        data,
        media_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="trial-{trial.number}.tar.gz"',
            "ETag": f'"{trial.code_hash}"',  # the bundle is addressed by its content
        },
    )


# steering --------------------------------------------------------------------------------------
def set_flags(store: Store, trial: Trial, *, pinned: bool | None = None, vetoed: bool | None = None) -> Trial:
    if pinned and trial.vetoed:
        raise Conflict(f"trial {trial.number} is vetoed: unveto it before pinning it")
    if vetoed and trial.pinned:
        raise Conflict(f"trial {trial.number} is pinned: unpin it before vetoing it")
    return store.set_trial_flags(trial.id, pinned=pinned, vetoed=vetoed)


def flagged(store: Store, numbers: TrialNumbers, trial: Trial) -> TrialSummary:
    return trial_summary(trial, numbers.number(store, trial.parent_id))


FLAG_PROBLEMS = problems(401, 403, 404, 409, 422)


@router.post("/{number}/pin", dependencies=[CAN_WRITE], responses=FLAG_PROBLEMS)
def pin(trial: TrialDep, store: StoreDep, numbers: NumbersDep) -> TrialSummary:
    """Keep the trial among the parents the strategy chooses from (once it has a score)."""
    return flagged(store, numbers, set_flags(store, trial, pinned=True))


@router.post("/{number}/unpin", dependencies=[CAN_WRITE], responses=FLAG_PROBLEMS)
def unpin(trial: TrialDep, store: StoreDep, numbers: NumbersDep) -> TrialSummary:
    return flagged(store, numbers, set_flags(store, trial, pinned=False))


@router.post("/{number}/veto", dependencies=[CAN_WRITE], responses=FLAG_PROBLEMS)
def veto(trial: TrialDep, store: StoreDep, numbers: NumbersDep) -> TrialSummary:
    """Never choose the trial as a parent again."""
    return flagged(store, numbers, set_flags(store, trial, vetoed=True))


@router.post("/{number}/unveto", dependencies=[CAN_WRITE], responses=FLAG_PROBLEMS)
def unveto(trial: TrialDep, store: StoreDep, numbers: NumbersDep) -> TrialSummary:
    return flagged(store, numbers, set_flags(store, trial, vetoed=False))
