"""What the API reads and writes: `XCreate` (a POST body), `XUpdate` (a PATCH body) and `XPublic` (what is
answered) per resource. Trials and ideas are shown by their number in the campaign, never by row id."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autoresearch.domain.model import (
    ApiToken,
    Campaign,
    CampaignStatus,
    Direction,
    FailureLabel,
    Idea,
    IdeaOrigin,
    Role,
    Scope,
    Trial,
    TrialBrief,
    TrialRole,
    TrialStatus,
)
from autoresearch.domain.strategies import STRATEGIES
from autoresearch.environment import Environment

API_PREFIX = "/api/v1"

# The longest text each kind of request field takes; longer is a 422 naming the field. Generous for what
# a person or a client writes, so that a field can only be abused within a few megabytes in all.
NAME_CHARS = 200  # names of environments, presets, strategies, surfaces
MODEL_CHARS = 1_000  # a model spec, with the URL of an OpenAI-compatible server
TEXT_CHARS = 20_000  # prose: a goal, a hypothesis, a rationale
DIFF_CHARS = 1_000_000  # a unified diff; the body cap (AUTORESEARCH_API_MAX_BODY_BYTES) leaves room for it


def campaign_path(campaign: Campaign) -> str:
    """Where the campaign is served; other paths of it start with this."""
    return f"{API_PREFIX}/campaigns/{quote(campaign.name, safe='')}"


class _Input(BaseModel):
    """A request body: an unknown field is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


# health ----------------------------------------------------------------------------------------
class HealthPublic(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    database: str  # the URL with its password hidden
    process: int = Field(description="The process id of the API worker that answered.")


# tokens ----------------------------------------------------------------------------------------
class TokenCreate(_Input):
    name: str = Field(min_length=1, max_length=100, description="Who or what uses it, e.g. `dashboard`.")
    scope: Scope = Scope.READ


class TokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    scope: Scope
    prefix: str = Field(description="The token's first characters, to tell tokens apart.")
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    secret: str = Field(description="The token itself. Shown this once: only its hash is stored.")

    @classmethod
    def of(cls, token: ApiToken, secret: str) -> TokenCreated:
        return cls(**TokenPublic.model_validate(token).model_dump(), secret=secret)


# environments ----------------------------------------------------------------------------------
class ResourcesPublic(BaseModel):
    cpu_threads: int
    gpu: float = Field(description="A fraction of one GPU, or a whole number of GPUs.")


class BudgetPublic(BaseModel):
    steps: int | None
    seconds: float | None
    wall_clock_s: float
    memory_mb: int | None
    max_params: int | None
    max_bytes: int | None = Field(
        description="Of the saved model, as the evaluator measures it (artifact_bytes)."
    )


class PresetPublic(BaseModel):
    name: str
    description: str
    default: bool
    budget: BudgetPublic
    resources: ResourcesPublic = Field(
        description="What one trial needs (the environment's default if unset)."
    )


class EnvironmentPublic(BaseModel):
    name: str
    description: str
    metric: str
    unit: str
    direction: Direction
    default_preset: str
    presets: list[PresetPublic]
    surfaces: list[str]

    @classmethod
    def of(cls, env: Environment) -> EnvironmentPublic:
        spec = env.spec
        return cls(
            name=spec.name,
            description=" ".join(spec.description.split()),
            metric=spec.metric.name,
            unit=spec.metric.unit,
            direction=spec.metric.direction,
            default_preset=spec.default_preset,
            presets=[
                PresetPublic(
                    name=name,
                    description=preset.description,
                    default=name == spec.default_preset,
                    budget=BudgetPublic.model_validate(preset.budget.model_dump()),
                    resources=ResourcesPublic.model_validate(env.resources(preset).model_dump()),
                )
                for name, preset in spec.presets.items()
            ],
            surfaces=list(spec.surfaces),
        )


# campaigns -------------------------------------------------------------------------------------
class CampaignCreate(_Input):
    """A research goal to pursue on an environment. The cluster's `autoresearch controller` drives it."""

    goal: str = Field(
        min_length=1,
        max_length=TEXT_CHARS,
        description="The research goal in words; the proposer favours what it names.",
    )
    environment: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=NAME_CHARS, description="See `GET /api/v1/environments`."
    )
    preset: str | None = Field(
        default=None, max_length=NAME_CHARS, description="Default: the environment's default preset."
    )
    strategy: str = Field(
        default="evolve", max_length=NAME_CHARS, description=f"One of: {', '.join(STRATEGIES)}."
    )
    trials: int = Field(default=10, ge=1, description="Trials to run, the baseline included.")
    concurrency: int = Field(default=2, ge=1, description="Trials in flight at once.")
    seed: int = Field(default=0, description="The search's seed: the strategy's and the proposer's choices.")
    train_seed: int = Field(default=0, description="The seed every search trial trains with.")
    confirm_top: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Best distinct programs re-run on fresh seeds when the search ends (default: the server's, 3).",
    )
    confirm_seeds: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Fresh seeds of each confirmation; 0: none (default: the server's, 3).",
    )
    seconds_budget: float | None = Field(
        default=None,
        gt=0,
        description="Also stop the search once its trials trained this many seconds in all (runner's clock).",
    )
    race: int | None = Field(
        default=None,
        ge=0,
        le=10,
        description="Re-runs of a child that looks like a new best, within the noise, before it may be a "
        "parent; 0: none (default: the server's, 1).",
    )
    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        max_length=100,
        description="Default: ENVIRONMENT-PRESET-TIMESTAMP.",
    )
    proposer: str | None = Field(
        default=None,
        max_length=MODEL_CHARS,
        description="The model that writes ideas (anthropic:MODEL, openai:MODEL, openai-compatible:URL:MODEL, "
        "URL one the operator lists in AUTORESEARCH_LLM_BASE_URLS); default: none, ideas come from the "
        "environment's offline catalog.",
    )
    implementer: str | None = Field(
        default=None,
        max_length=MODEL_CHARS,
        description="The model that writes patches; default: the proposer.",
    )
    analyst: str | None = Field(
        default=None,
        max_length=MODEL_CHARS,
        description="The model that notes on each trial; default: the proposer; `none`: no notes.",
    )
    max_dollars: float | None = Field(
        default=None, gt=0, description="Stop proposing once LLM calls cost this."
    )
    max_tokens: int | None = Field(
        default=None, gt=0, description="Stop proposing once LLM calls used this many."
    )

    @field_validator("name")
    @classmethod
    def _not_an_id(cls, name: str | None) -> str | None:
        if name is not None and name.isdigit():
            raise ValueError("a name of digits only would read as a campaign id")
        return name

    @model_validator(mode="after")
    def _models_need_a_proposer(self) -> CampaignCreate:
        given = [
            f for f in ("implementer", "analyst", "max_dollars", "max_tokens") if getattr(self, f) is not None
        ]
        if self.proposer is None and given:
            raise ValueError(f"{', '.join(given)} need a proposer model: the catalog writes its own patches")
        return self


class CampaignUpdate(_Input):
    """New limits for a campaign; what is left out stays as it is."""

    trials: int | None = Field(
        default=None, ge=1, description="The trial budget; not below the trials already counted."
    )
    concurrency: int | None = Field(default=None, ge=1)
    max_dollars: float | None = Field(default=None, gt=0, description="The LLM dollar budget.")
    max_tokens: int | None = Field(default=None, gt=0, description="The LLM token budget.")


class CampaignPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    environment: str
    preset: str
    strategy: str
    goal: str
    status: CampaignStatus
    trial_budget: int
    concurrency: int
    seed: int
    train_seed: int
    confirm_top: int
    confirm_seeds: int
    race: int
    seconds_budget: float | None
    distributed: bool = Field(description="Driven by the cluster's controller (all campaigns made here are).")
    controller: str = Field(description="The controller driving it now (host:pid), or empty.")
    created_at: datetime


class UsagePublic(BaseModel):
    calls: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    tokens: int
    dollars: float
    unpriced_calls: int = Field(description="Calls to models without a known price (not in `dollars`).")


class LLMBudgetPublic(BaseModel):
    dollars: float | None
    tokens: int | None


class AgentsPublic(BaseModel):
    proposer: str
    implementer: str
    analyst: str | None
    budget: LLMBudgetPublic


class LLMUsagePublic(BaseModel):
    roles: dict[Role, UsagePublic]
    total: UsagePublic


class TrialSummary(BaseModel):
    """A trial as listed: its outcome and place in the lineage, without diff, logs or curve."""

    number: int
    parent: int | None = Field(description="The parent trial's number; null for the baseline.")
    status: TrialStatus
    label: FailureLabel | None
    score: float | None
    pinned: bool
    vetoed: bool
    seed: int
    role: TrialRole = Field(
        description="`search`, or `confirm`: a re-run on a fresh seed of the trial it confirms."
    )
    worker: str
    duration_s: float | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


def trial_summary(trial: Trial | TrialBrief, parent: int | None) -> TrialSummary:
    return TrialSummary(
        number=trial.number,
        parent=parent,
        status=trial.status,
        label=trial.label,
        score=trial.score,
        pinned=trial.pinned,
        vetoed=trial.vetoed,
        seed=trial.seed,
        role=trial.role,
        worker=trial.worker,
        duration_s=trial.duration_s,
        created_at=trial.created_at,
        started_at=trial.started_at,
        finished_at=trial.finished_at,
    )


class CampaignDetailPublic(CampaignPublic):
    counts: dict[TrialStatus, int] = Field(description="Every status, 0 when no trial has it.")
    trials_counted: int = Field(
        description="Trials that use up the budget: succeeded and failed search trials and races (confirmation "
        "comes on top)."
    )
    direction: Direction | None = Field(
        description="The metric's direction; null when the environment is gone."
    )
    best: TrialSummary | None
    agents: AgentsPublic | None = Field(description="The LLM agents; null when ideas come from the catalog.")
    llm: LLMUsagePublic
    gpu_hours: float | None = Field(
        description="Hours its trials ran times the GPUs its preset asks for; null when the environment is gone."
    )
    last_event: int = Field(
        description="The id of the newest trial event: stream `/events?after=` it for what comes next."
    )
    confirmed: ConfirmationPublic | None = Field(
        description="What the confirmation runs say; null when the campaign confirms nothing (yet)."
    )


class EstimatePublic(BaseModel):
    n: int
    mean: float
    sd: float | None = Field(description="Across seeds; null with one seed.")
    scores: dict[int, float] = Field(description="Score by training seed.")


class DifferencePublic(BaseModel):
    mean: float = Field(description="Mean score minus the baseline's.")
    low: float = Field(description="The bootstrap 95 % interval's lower end.")
    high: float
    paired: bool = Field(
        description="Both ran on the same seeds, and the per-seed differences were resampled."
    )


class ConfirmedProgramPublic(BaseModel):
    trial: int = Field(description="The number of the search trial whose program was re-run.")
    idea: str
    search_score: float | None = Field(
        description="What the search measured: one seed, on the split it chose by."
    )
    val: EstimatePublic | None = Field(description="On the search's split, over the fresh seeds.")
    test: EstimatePublic | None = Field(description="On the environment's test split, over the fresh seeds.")
    failed: int
    train_seconds: float | None = Field(
        description="Its mean training time over the fresh seeds (the runner's clock)."
    )
    params: float | None = Field(description="Its parameters, when the evaluator reports them.")
    difference: DifferencePublic | None = Field(description="Against the baseline, on the reported split.")
    beyond_noise: bool


class ConfirmationPublic(BaseModel):
    split: str = Field(description="Where the result is reported: `test`, or `val` without a test split.")
    baseline: ConfirmedProgramPublic
    candidates: list[ConfirmedProgramPublic] = Field(
        description="Best first, by their mean on the search's split."
    )
    winner: int | None
    improved: bool = Field(
        description="The winner's interval against the baseline excludes zero, on the better side."
    )
    pending: int = Field(description="Confirmation trials not finished yet.")
    direction: Direction
    summary: str


# ideas -----------------------------------------------------------------------------------------
class IdeaCreate(_Input):
    """A person's idea for the campaign to try: the controller implements it before proposing more."""

    hypothesis: str = Field(
        min_length=1, max_length=TEXT_CHARS, description="What to change and why it should help."
    )
    diff: str = Field(
        default="",
        max_length=DIFF_CHARS,
        description="A unified diff against the environment's baseline code. Required when the campaign has "
        "no LLM implementer (a catalog campaign); otherwise the implementer writes it from the hypothesis.",
    )
    parent: int = Field(
        default=0, ge=0, description="The number of the trial to build on; default the baseline."
    )
    surface: str = Field(
        default="", max_length=NAME_CHARS, description="The part of the recipe it changes, e.g. `optimizer`."
    )
    rationale: str = Field(default="", max_length=TEXT_CHARS, description="Why it should help, at length.")


class IdeaPublic(BaseModel):
    id: int
    title: str
    hypothesis: str
    origin: IdeaOrigin
    surface: str
    key: str
    rationale: str
    diff: str
    parents: list[int] = Field(description="Numbers of the trials it builds on.")
    trial: int | None = Field(description="The number of the trial it became; null while it waits.")
    duplicate_of: int | None = Field(description="The idea it nearly repeats (then it never runs).")

    @classmethod
    def of(cls, idea: Idea, numbers: Mapping[int, int], trial: int | None) -> IdeaPublic:
        """`numbers` maps trial ids to numbers (at least those of the idea's parents)."""
        return cls.model_validate(
            _fields(idea, cls)
            | {
                "title": idea.title,
                "parents": [numbers[t] for t in idea.parent_trial_ids if t in numbers],
                "trial": trial,
            }
        )


# trials ----------------------------------------------------------------------------------------
class TrialPagePublic(BaseModel):
    items: list[TrialSummary]
    next: str | None = Field(description="Pass as `after` for the following page; null on the last one.")


class PatchPublic(BaseModel):
    attempt: int
    diff: str
    applied: bool
    accepted: bool
    error: str
    files: list[str]


class LLMCallSummary(BaseModel):
    """An LLM call behind the trial, without its prompt and answer (`autoresearch trial --prompts` has them)."""

    id: int
    role: Role
    model: str
    template: str
    error: str
    attempts: int
    duration_s: float
    usage: UsagePublic
    created_at: datetime | None


class TrialPublic(TrialSummary):
    idea: IdeaPublic
    reason: str
    exit_code: int | None
    metrics: dict[str, float]
    curve: list[dict[str, float]] = Field(description="Training progress, e.g. {step, loss} per point.")
    diff: str = Field(description="The code this trial ran, as a diff against the environment's baseline.")
    log_tail: str
    code_hash: str
    bundle: str | None = Field(
        description="Where to download the code it ran (tar.gz); null if it never ran."
    )
    analysis: str
    retry_of: int | None = Field(description="The number of the trial this one ran again.")
    confirms: int | None = Field(description="The number of the search trial a confirmation re-runs.")
    test_score: float | None = Field(description="On the environment's test split: confirmation runs only.")
    record: dict[str, Any] = Field(
        description="What it ran on: environment digest, preset, seed, code hash, Python and package "
        "versions, hardware, sandbox."
    )
    lineage: list[int] = Field(description="Trial numbers from the baseline down to this one.")
    patches: list[PatchPublic] = Field(description="Every implementation attempt, in order.")
    llm_calls: list[LLMCallSummary]


# lineage ---------------------------------------------------------------------------------------
class LineageNode(BaseModel):
    number: int
    parent: int | None
    status: TrialStatus
    label: FailureLabel | None
    score: float | None
    title: str
    origin: IdeaOrigin
    pinned: bool
    vetoed: bool
    retry_of: int | None
    role: TrialRole


class LineagePublic(BaseModel):
    nodes: list[LineageNode] = Field(description="Every trial, in order of number.")
    edges: list[tuple[int, int]] = Field(description="[parent number, child number] pairs.")


def _fields(obj: Any, schema: type[BaseModel]) -> dict[str, Any]:
    """The attributes of `obj` that `schema` has fields of the same name for."""
    return {name: getattr(obj, name) for name in schema.model_fields if hasattr(obj, name)}
