"""The CLI's reports as JSON: what `campaigns --json`, `show --json` and `trial --json` print, so the CLI
reads a remote API (`--api URL`) with the renderers it uses on a local database."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from autoresearch.api.dependencies import CampaignDep, SettingsDep, StoreDep, TrialDep
from autoresearch.api.problems import problems
from autoresearch.api.security import CAN_READ
from autoresearch.services import reports

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("/campaigns", dependencies=[CAN_READ], responses=problems(401))
def campaigns_report(store: StoreDep, settings: SettingsDep) -> list[dict[str, Any]]:
    """Every campaign with its progress, baseline and best score, newest first."""
    return reports.campaign_rows(store, reports.direction_finder(settings))


@router.get("/campaigns/{ref}", dependencies=[CAN_READ], responses=problems(401, 404))
def campaign_report(
    campaign: CampaignDep,
    store: StoreDep,
    settings: SettingsDep,
    top: Annotated[int, Query(ge=1, le=1000, description="Rows of the leaderboard.")] = 10,
) -> dict[str, Any]:
    """The leaderboard, lineage tree, failure labels, LLM usage and the best diff against the baseline."""
    direction = reports.direction_finder(settings)(campaign.environment)
    return reports.campaign_report(store, campaign, direction, top=top)


@router.get("/campaigns/{ref}/trials/{number}", dependencies=[CAN_READ], responses=problems(401, 404, 422))
def trial_report(trial: TrialDep, store: StoreDep) -> dict[str, Any]:
    """One trial with its idea, patch attempts, LLM calls and analyst note."""
    return reports.trial_report(store, trial)
