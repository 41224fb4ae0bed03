"""Campaigns: submit a research goal, follow it, pause, resume or cancel it, change its budget.

Campaigns submitted here run on the cluster: the `autoresearch controller` takes each running one.
A pause or cancel is a status change the controller driving the campaign reads and obeys.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from autoresearch.agents.build import check_clients
from autoresearch.agents.config import CATALOG, AgentsConfig, agents_config
from autoresearch.api.dependencies import CampaignDep, NumbersDep, SettingsDep, StoreDep
from autoresearch.api.numbers import TrialNumbers
from autoresearch.api.problems import problems
from autoresearch.api.routes.environments import environment_named
from autoresearch.api.schemas import (
    AgentsPublic,
    CampaignCreate,
    CampaignDetailPublic,
    CampaignPublic,
    CampaignUpdate,
    ConfirmationPublic,
    LLMBudgetPublic,
    LLMUsagePublic,
    TrialSummary,
    UsagePublic,
    campaign_path,
    trial_summary,
)
from autoresearch.api.security import CAN_READ, CAN_WRITE
from autoresearch.domain.model import (
    Campaign,
    CampaignStatus,
    Direction,
    FailureLabel,
    TrialQuery,
    TrialRole,
    TrialSort,
    TrialStatus,
    Usage,
)
from autoresearch.environment import Environment
from autoresearch.errors import AutoresearchError, ConfigError, Conflict, NotFound
from autoresearch.services.campaign import COUNTED, create_campaign
from autoresearch.services.reports import campaign_confirmation, usage_dict
from autoresearch.services.store import Store
from autoresearch.settings import Settings

router = APIRouter(prefix="/campaigns", tags=["campaigns"])
READ_PROBLEMS = problems(401, 404)
WRITE_PROBLEMS = problems(401, 403, 404, 409, 422)

_ENDED = frozenset({CampaignStatus.FINISHED, CampaignStatus.CANCELLED})


# reading ---------------------------------------------------------------------------------------
def installed_environment(settings: Settings, name: str) -> Environment | None:
    """The campaign's environment; None when it is no longer installed here."""
    try:
        return environment_named(settings, name)
    except AutoresearchError:
        return None


def best_trial(store: Store, campaign: Campaign, direction: Direction | None) -> TrialSummary | None:
    if direction is None:
        return None
    sort = TrialSort.SCORE if direction is Direction.MINIMIZE else TrialSort.SCORE_DESC
    query = TrialQuery(statuses=(TrialStatus.SUCCEEDED,), roles=(TrialRole.SEARCH,), sort=sort, limit=1)
    page = store.page_trials(campaign.id, query)
    if not page.trials:
        return None
    best = page.trials[0]
    return trial_summary(best, best.parent)


def llm_usage(store: Store, campaign: Campaign) -> LLMUsagePublic:
    usage = store.llm_usage(campaign.id)
    return LLMUsagePublic(
        roles={role: UsagePublic.model_validate(usage_dict(u)) for role, u in sorted(usage.items())},
        total=UsagePublic.model_validate(usage_dict(sum(usage.values(), Usage()))),
    )


def agents_public(campaign: Campaign) -> AgentsPublic | None:
    agents = AgentsConfig.of(campaign.agents)
    if agents is None:
        return None
    return AgentsPublic(
        proposer=agents.proposer,
        implementer=agents.implementer,
        analyst=agents.analyst,
        budget=LLMBudgetPublic(dollars=agents.budget.dollars, tokens=agents.budget.tokens),
    )


def campaign_detail(
    store: Store, numbers: TrialNumbers, settings: Settings, campaign: Campaign
) -> CampaignDetailPublic:
    last_event = store.last_event_id(campaign.id)  # before the rest: nothing read below is older
    counts = store.count_trials(campaign.id)
    env = installed_environment(settings, campaign.environment)  # loaded once: it reads and hashes files
    direction = env.spec.metric.direction if env is not None else None
    return CampaignDetailPublic(
        **CampaignPublic.model_validate(campaign).model_dump(),
        counts={s: counts.get(s, 0) for s in TrialStatus},
        trials_counted=sum(store.count_trials(campaign.id, budget_only=True).get(s, 0) for s in COUNTED),
        direction=direction,
        best=best_trial(store, campaign, direction),
        agents=agents_public(campaign),
        llm=llm_usage(store, campaign),
        gpu_hours=gpu_hours(store, env, campaign),
        last_event=last_event,
        confirmed=confirmed(store, campaign, direction),
    )


def confirmed(store: Store, campaign: Campaign, direction: Direction | None) -> ConfirmationPublic | None:
    report = campaign_confirmation(store, campaign, direction)
    return ConfirmationPublic.model_validate(report) if report is not None else None


def gpu_hours(store: Store, env: Environment | None, campaign: Campaign) -> float | None:
    """GPU time spent: every trial's run time times the GPUs (or the fraction of one) its preset needs."""
    preset = env.spec.presets.get(campaign.preset) if env is not None else None
    if env is None or preset is None:
        return None
    return round(store.trial_seconds(campaign.id) * env.resources(preset).gpu / 3600, 4)


@router.get("", dependencies=[CAN_READ], responses=problems(401))
def list_campaigns(store: StoreDep) -> list[CampaignPublic]:
    """Newest first."""
    return [CampaignPublic.model_validate(campaign) for campaign in store.list_campaigns()]


@router.get("/{ref}", dependencies=[CAN_READ], responses=READ_PROBLEMS)
def get_campaign(
    campaign: CampaignDep, store: StoreDep, numbers: NumbersDep, settings: SettingsDep
) -> CampaignDetailPublic:
    """By name, or by id; with its trial counts, best trial so far and LLM spending."""
    return campaign_detail(store, numbers, settings, campaign)


# submitting ------------------------------------------------------------------------------------
def submit_campaign(store: Store, settings: Settings, body: CampaignCreate) -> Campaign:
    """Check everything a controller would trip over later (environment, preset, models, their API keys
    and servers), then record the campaign for the cluster to run."""
    env = _named_in_body(settings, body.environment)
    agents = agents_config(
        body.proposer or CATALOG,
        implementer=body.implementer,
        analyst=body.analyst,
        max_dollars=body.max_dollars,
        max_tokens=body.max_tokens,
    )
    if agents is not None:
        check_clients(agents, settings, local_run=False)  # the cluster runs it: listed servers only
    if body.name is not None and _exists(store, body.name):
        raise Conflict(f"a campaign named {body.name!r} already exists; choose another name")
    try:
        return create_campaign(
            store,
            env,
            preset=body.preset,
            strategy=body.strategy,
            trials=body.trials,
            concurrency=body.concurrency,
            seed=body.seed,
            train_seed=body.train_seed,
            confirm_top=settings.confirm_top if body.confirm_top is None else body.confirm_top,
            confirm_seeds=settings.confirm_seeds if body.confirm_seeds is None else body.confirm_seeds,
            race=settings.race if body.race is None else body.race,
            seconds_budget=body.seconds_budget,
            name=body.name,
            goal=body.goal,
            agents=agents.model_dump(mode="json") if agents else None,
            distributed=True,
        )
    except NotFound as exc:  # the preset: something the body named, not the URL
        raise ConfigError(f"preset: {exc}") from exc


def _named_in_body(settings: Settings, name: str) -> Environment:
    try:
        return environment_named(settings, name)
    except NotFound as exc:
        raise ConfigError(f"environment: {exc}") from exc


def _exists(store: Store, name: str) -> bool:
    try:
        store.get_campaign(name)
    except NotFound:
        return False
    return True


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[CAN_WRITE],
    responses=problems(401, 403, 409, 422),
)
def create(
    body: CampaignCreate, store: StoreDep, settings: SettingsDep, response: Response
) -> CampaignPublic:
    """Submit a research goal. The campaign starts `running`; the cluster's controller takes it up."""
    campaign = submit_campaign(store, settings, body)
    response.headers["Location"] = campaign_path(campaign)
    return CampaignPublic.model_validate(campaign)


# steering --------------------------------------------------------------------------------------
def pause(store: Store, campaign: Campaign) -> Campaign:
    return _move(store, campaign, (CampaignStatus.RUNNING,), CampaignStatus.STOPPED)


def resume(store: Store, campaign: Campaign) -> Campaign:
    if not campaign.distributed:
        raise Conflict(
            f"campaign {campaign.name!r} runs in the process that started it, not on the cluster: "
            f"run `autoresearch resume {campaign.name}` where it ran"
        )
    return _move(store, campaign, (CampaignStatus.STOPPED,), CampaignStatus.RUNNING)


def cancel(store: Store, campaign: Campaign) -> Campaign:
    """End it for good: its pending trials never run and running ones are stopped (their workers find
    the trial interrupted at the next heartbeat and kill it)."""
    cancelled = _move(
        store, campaign, (CampaignStatus.RUNNING, CampaignStatus.STOPPED), CampaignStatus.CANCELLED
    )
    store.interrupt_unfinished(campaign.id, FailureLabel.CANCELLED, "the campaign was cancelled")
    return cancelled


def _move(
    store: Store, campaign: Campaign, sources: tuple[CampaignStatus, ...], target: CampaignStatus
) -> Campaign:
    """One guarded statement: a controller finishing the campaign at the same moment wins or loses cleanly."""
    moved = store.move_campaign(campaign.id, sources=sources, target=target)
    if moved is None:
        now = store.get_campaign(campaign.id).status
        why = "nothing resumes it" if now in _ENDED else f"only a {' or '.join(sources)} campaign can be"
        raise Conflict(f"campaign {campaign.name!r} is {now}: {why}")
    return moved


@router.post("/{ref}/pause", dependencies=[CAN_WRITE], responses=WRITE_PROBLEMS)
def pause_campaign(campaign: CampaignDep, store: StoreDep) -> CampaignPublic:
    """running -> stopped: no new trials start; trials in flight finish. `resume` carries on."""
    return CampaignPublic.model_validate(pause(store, campaign))


@router.post("/{ref}/resume", dependencies=[CAN_WRITE], responses=WRITE_PROBLEMS)
def resume_campaign(campaign: CampaignDep, store: StoreDep) -> CampaignPublic:
    """stopped -> running, for campaigns on the cluster; a local campaign resumes where it ran."""
    return CampaignPublic.model_validate(resume(store, campaign))


@router.post("/{ref}/cancel", dependencies=[CAN_WRITE], responses=WRITE_PROBLEMS)
def cancel_campaign(campaign: CampaignDep, store: StoreDep) -> CampaignPublic:
    """End the campaign for good: nothing resumes a cancelled campaign."""
    return CampaignPublic.model_validate(cancel(store, campaign))


def update_limits(store: Store, campaign: Campaign, body: CampaignUpdate) -> Campaign:
    if campaign.status in _ENDED:
        raise Conflict(f"campaign {campaign.name!r} is {campaign.status}: its limits no longer matter")
    if body.trials is not None:
        counts = store.count_trials(campaign.id, budget_only=True)
        counted = sum(counts.get(s, 0) for s in COUNTED)
        if body.trials < counted:
            raise ConfigError(f"trials: {body.trials} is below the {counted} trials the campaign has counted")
    agents = None
    if body.max_dollars is not None or body.max_tokens is not None:
        config = AgentsConfig.of(campaign.agents)
        if config is None:
            raise ConfigError(f"campaign {campaign.name!r} uses no LLM: it has no LLM budget to change")
        agents = config.with_budget(dollars=body.max_dollars, tokens=body.max_tokens).model_dump(mode="json")
    return store.set_campaign_limits(
        campaign.id, trial_budget=body.trials, concurrency=body.concurrency, agents=agents
    )


@router.patch("/{ref}", dependencies=[CAN_WRITE], responses=WRITE_PROBLEMS)
def update_campaign(
    body: CampaignUpdate, campaign: CampaignDep, store: StoreDep, numbers: NumbersDep, settings: SettingsDep
) -> CampaignDetailPublic:
    """Change the trial budget, concurrency or LLM budget; a running controller reads them at once."""
    return campaign_detail(store, numbers, settings, update_limits(store, campaign, body))
