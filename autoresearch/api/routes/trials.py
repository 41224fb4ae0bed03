"""A campaign's trials by number: pages of them, one in full, its ancestors, the code it ran, and the
pins and vetoes people put on parents."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from autoresearch.adapters.artifacts import ArtifactStore, bundle_key
from autoresearch.api.dependencies import ArtifactsDep, CampaignDep, NumbersDep, StoreDep, TrialDep
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
from autoresearch.services.reports import trial_report
from autoresearch.services.store import Store

router = APIRouter(prefix="/campaigns/{ref}/trials", tags=["trials"])
MAX_PAGE = 200
_CODE_HASH = re.compile(r"[0-9a-f]{64}")  # a sha256: the only thing an artifact key is made from here


# reading ---------------------------------------------------------------------------------------
def summaries(store: Store, numbers: TrialNumbers, trials: Sequence[Trial]) -> list[TrialSummary]:
    """The trials as listed, each with its parent's number."""
    numbers.learn(trials)
    parents = numbers.of(store, [t.parent_id for t in trials])
    return [trial_summary(t, parents.get(t.parent_id) if t.parent_id is not None else None) for t in trials]


@router.get("", dependencies=[CAN_READ], responses=problems(401, 404, 422))
def list_trials(
    campaign: CampaignDep,
    store: StoreDep,
    numbers: NumbersDep,
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
    page = store.page_trials(campaign.id, query)
    return TrialPagePublic(items=summaries(store, numbers, page.trials), next=page.next)


def bundle_path(campaign: Campaign, trial: Trial) -> str | None:
    if not trial.code_hash:
        return None
    return f"{campaign_path(campaign)}/trials/{trial.number}/bundle"


def trial_public(store: Store, numbers: TrialNumbers, campaign: Campaign, trial: Trial) -> TrialPublic:
    report = trial_report(store, trial)  # the idea's and the trial's LLM calls, patches and lineage
    lineage: list[int] = report["lineage"]
    summary = trial_summary(trial, lineage[-2] if len(lineage) > 1 else None)
    return TrialPublic(
        **summary.model_dump(),
        idea=idea_public(store, numbers, store.get_idea(trial.idea_id)),
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
        lineage=lineage,
        patches=[_patch(p) for p in report["patches"]],
        llm_calls=[LLMCallSummary.model_validate(call) for call in report["llm_calls"]],
    )


def _patch(fields: dict[str, Any]) -> PatchPublic:
    patch = Patch(**fields)
    return PatchPublic(
        attempt=patch.attempt,
        diff=patch.diff,
        applied=patch.applied,
        accepted=patch.accepted,
        error=patch.error,
        files=list(patch.files),
    )


@router.get("/{number}", dependencies=[CAN_READ], responses=problems(401, 404, 422))
def get_trial(trial: TrialDep, campaign: CampaignDep, store: StoreDep, numbers: NumbersDep) -> TrialPublic:
    """The trial in full: idea, diff, metrics, curve, log tail, patch attempts and LLM calls."""
    return trial_public(store, numbers, campaign, trial)


@router.get("/{number}/ancestors", dependencies=[CAN_READ], responses=problems(401, 404, 422))
def list_ancestors(trial: TrialDep, store: StoreDep) -> list[TrialSummary]:
    """The trial's parent, its parent's parent... root (the baseline) first; empty for the baseline."""
    chain = store.ancestors(trial.id)
    return [trial_summary(t, chain[i - 1].number if i else None) for i, t in enumerate(chain)]


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


FLAG_PROBLEMS = problems(401, 403, 404, 409, 422)


@router.post("/{number}/pin", dependencies=[CAN_WRITE], responses=FLAG_PROBLEMS)
def pin(trial: TrialDep, store: StoreDep, numbers: NumbersDep) -> TrialSummary:
    """Keep the trial among the parents the strategy chooses from (once it has a score)."""
    return summaries(store, numbers, [set_flags(store, trial, pinned=True)])[0]


@router.post("/{number}/unpin", dependencies=[CAN_WRITE], responses=FLAG_PROBLEMS)
def unpin(trial: TrialDep, store: StoreDep, numbers: NumbersDep) -> TrialSummary:
    return summaries(store, numbers, [set_flags(store, trial, pinned=False)])[0]


@router.post("/{number}/veto", dependencies=[CAN_WRITE], responses=FLAG_PROBLEMS)
def veto(trial: TrialDep, store: StoreDep, numbers: NumbersDep) -> TrialSummary:
    """Never choose the trial as a parent again."""
    return summaries(store, numbers, [set_flags(store, trial, vetoed=True)])[0]


@router.post("/{number}/unveto", dependencies=[CAN_WRITE], responses=FLAG_PROBLEMS)
def unveto(trial: TrialDep, store: StoreDep, numbers: NumbersDep) -> TrialSummary:
    return summaries(store, numbers, [set_flags(store, trial, vetoed=False)])[0]
