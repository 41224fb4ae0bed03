"""Campaigns, ideas, patches and trials, and the rules for how a trial's state may move."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field
from datetime import datetime
from typing import Any


class FailureLabel(enum.StrEnum):
    """Why a trial produced no score. Exactly one per failed or interrupted trial."""

    PATCH_FAILED = "patch_failed"  # the idea's diff did not apply to its parent's code
    ILLEGAL_EDIT = "illegal_edit"  # the diff touched a protected path; it never ran
    CRASH = "crash"  # training or evaluation exited non-zero
    TIMEOUT = "timeout"  # the wall-clock budget ran out; the process group was killed
    OOM = "oom"  # out of host or device memory
    DISK = "disk"  # wrote past its disk budget: its folders, one file, or its /tmp
    SIZE_CAP = "size_cap"  # the trained model is larger than the preset allows
    GATE_MISS = "gate_miss"  # the evaluator's verdict failed one of the environment's gates
    SAME_CODE = "same_code"  # the patch made the code of an earlier trial at the same seed; not run again
    WORKER_LOST = "worker_lost"  # the process running the trial died (not the candidate's fault)
    CANCELLED = "cancelled"  # the user stopped the campaign while the trial ran

    @property
    def blames_candidate(self) -> bool:
        """True when the candidate's code is at fault, false when the service or the user is."""
        return self not in (FailureLabel.WORKER_LOST, FailureLabel.CANCELLED)

    @property
    def status(self) -> TrialStatus:
        return TrialStatus.FAILED if self.blames_candidate else TrialStatus.INTERRUPTED


class TrialStatus(enum.StrEnum):
    PENDING = "pending"  # created, waiting for a runner
    RUNNING = "running"  # claimed by a runner
    SUCCEEDED = "succeeded"  # scored by the evaluator
    FAILED = "failed"  # the candidate failed: see its label
    INTERRUPTED = "interrupted"  # stopped through no fault of the candidate: worker_lost or cancelled

    @property
    def is_terminal(self) -> bool:
        return self in (TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.INTERRUPTED)


# Every allowed move. Terminal states have none: a retry is a new trial, so history is never rewritten.
TRIAL_TRANSITIONS: Mapping[TrialStatus, frozenset[TrialStatus]] = {
    TrialStatus.PENDING: frozenset({TrialStatus.RUNNING, TrialStatus.FAILED, TrialStatus.INTERRUPTED}),
    TrialStatus.RUNNING: frozenset({TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.INTERRUPTED}),
    TrialStatus.SUCCEEDED: frozenset(),
    TrialStatus.FAILED: frozenset(),
    TrialStatus.INTERRUPTED: frozenset(),
}


class IllegalTransition(ValueError):
    def __init__(self, trial_id: int, current: TrialStatus, target: TrialStatus) -> None:
        super().__init__(f"trial {trial_id} cannot move from {current} to {target}")
        self.trial_id, self.current, self.target = trial_id, current, target


def check_transition(trial_id: int, current: TrialStatus, target: TrialStatus) -> None:
    if target not in TRIAL_TRANSITIONS[current]:
        raise IllegalTransition(trial_id, current, target)


def allowed_sources(target: TrialStatus) -> frozenset[TrialStatus]:
    """The states a trial may be in to move to `target` (used in guarded UPDATE statements)."""
    return frozenset(src for src, dsts in TRIAL_TRANSITIONS.items() if target in dsts)


class Direction(enum.StrEnum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"

    def better(self, a: float, b: float) -> bool:
        """True when score `a` is strictly better than `b`."""
        return a < b if self is Direction.MINIMIZE else a > b

    def sort_key(self, score: float) -> float:
        """A key under which smaller is better, whatever the direction."""
        return score if self is Direction.MINIMIZE else -score


class CampaignStatus(enum.StrEnum):
    RUNNING = "running"  # a controller is (or was, until it died) driving it
    STOPPED = "stopped"  # stopped by the user; `resume` carries on
    FINISHED = "finished"  # reached its trial budget
    CANCELLED = "cancelled"  # ended by the user for good: nothing resumes it


class IdeaOrigin(enum.StrEnum):
    BASELINE = "baseline"  # trial 0: the environment's code as shipped
    CATALOG = "catalog"  # a known technique from the environment's catalog
    MUTATION = "mutation"  # a numeric change to one hyperparameter of the recipe
    USER = "user"  # a patch a person supplied (`autoresearch try`)
    LLM = "llm"  # written by an LLM proposer; its patch by an LLM implementer


class TrialRole(enum.StrEnum):
    """What a trial measures for the campaign."""

    SEARCH = "search"  # a step of the search: its score steers the strategy
    RACE = "race"  # a promising search trial's program re-run on another seed before it may be a parent
    CONFIRM = "confirm"  # a re-run of a searched program on a fresh seed, scored on the test split too


# Search trials and their races use up the trial budget; confirmation comes on top of it.
BUDGET_ROLES = (TrialRole.SEARCH, TrialRole.RACE)


class Role(enum.StrEnum):
    """The LLM agents of a campaign; each has its own model, prompts and budget."""

    PROPOSER = "proposer"  # writes ideas from the goal and the lineage
    IMPLEMENTER = "implementer"  # turns an idea into a patch, revising on errors
    ANALYST = "analyst"  # writes a note on each finished trial for later prompts


@dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    environment: str
    preset: str
    strategy: str
    goal: str
    trial_budget: int
    concurrency: int
    seed: int  # the search's own seed: the strategy's and the proposer's choices
    status: CampaignStatus
    created_at: datetime
    train_seed: int = 0  # every search trial trains with it; confirmation runs on fresh seeds
    confirm_top: int = 0  # the best distinct programs re-run when the search ends
    confirm_seeds: int = 0  # fresh training seeds each of them (and the baseline) is re-run on
    race: int = 0  # re-runs of a child that looks like a new best, within noise, before it may be a parent
    seconds_budget: float | None = None  # the search also stops once its trials trained this long in all
    agents: Mapping[str, Any] = field(default_factory=dict)  # LLM models, budgets (agents.AgentsConfig)
    distributed: bool = False  # driven by `autoresearch controller`, its trials run on workers
    controller: str = ""  # who holds the controller lease ("host:pid"), if anyone does


@dataclass(frozen=True)
class Idea:
    id: int
    campaign_id: int
    hypothesis: str
    origin: IdeaOrigin
    surface: str = ""
    key: str = ""  # stable name of the technique or mutation, e.g. "rmsnorm" or "learning_rate*1.5"
    parent_trial_ids: tuple[int, ...] = ()
    diff: str = ""  # what the proposer asked for, against the baseline; the patch records what applied
    rationale: str = ""  # why the proposer expects it to help, and by how much
    llm_call_id: int | None = None  # the proposer's call that wrote it
    duplicate_of: int | None = None  # dropped by the novelty gate as a near-copy of this idea: never run

    @property
    def title(self) -> str:
        """A short label: the key and the hypothesis up to its first colon or full stop."""
        return idea_title(self.origin, self.key, self.hypothesis)


def idea_title(origin: IdeaOrigin, key: str, hypothesis: str) -> str:
    if origin is IdeaOrigin.BASELINE:
        return "baseline"
    head = headline(hypothesis)
    return f"{key}: {head}" if key and origin is IdeaOrigin.CATALOG else head


def headline(hypothesis: str) -> str:
    """A hypothesis up to its first colon or full stop, at most 72 characters."""
    head = re.split(r"[:.](?:\s|$)", hypothesis.strip(), maxsplit=1)[0]
    return head if len(head) <= 72 else head[:71] + "…"


@dataclass(frozen=True)
class Patch:
    """One implementation attempt: the diff against the parent's code and whether it applied."""

    id: int
    trial_id: int
    attempt: int
    diff: str
    applied: bool
    error: str = ""  # why it did not apply, or why it failed preflight
    files: tuple[str, ...] = ()
    llm_call_id: int | None = None  # the implementer's call that wrote it

    @property
    def accepted(self) -> bool:
        return self.applied and not self.error


@dataclass(frozen=True)
class TrialResult:
    """What a runner reports: a score, or a failure label with its reason."""

    status: TrialStatus
    label: FailureLabel | None = None
    score: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    exit_code: int | None = None
    duration_s: float | None = None  # None: it never ran (e.g. patch_failed)
    log_tail: str = ""
    code_hash: str = ""
    curve: tuple[Mapping[str, float], ...] = ()  # training progress, {"step": n, "loss": x, ...} each
    test_score: float | None = None  # on the environment's test split: confirmation runs only
    record: Mapping[str, Any] = field(default_factory=dict)  # what it ran on, to reproduce it (`reproduce`)

    def __post_init__(self) -> None:
        if self.status is TrialStatus.SUCCEEDED:
            if self.score is None or not math.isfinite(self.score) or self.label is not None:
                raise ValueError(
                    f"a succeeded trial has a finite score and no failure label, got {self.score}"
                )
        elif self.status in (TrialStatus.FAILED, TrialStatus.INTERRUPTED):
            if self.label is None or self.label.status is not self.status:
                raise ValueError(f"a {self.status} trial needs a matching failure label, got {self.label}")
        else:
            raise ValueError(f"a result cannot leave a trial {self.status}")

    @classmethod
    def scored(cls, score: float, **kw: Any) -> TrialResult:
        return cls(status=TrialStatus.SUCCEEDED, score=score, **kw)

    @classmethod
    def failed(cls, label: FailureLabel, reason: str, **kw: Any) -> TrialResult:
        return cls(status=label.status, label=label, reason=reason, **kw)


@dataclass(frozen=True)
class Trial:
    id: int
    campaign_id: int
    number: int  # 0 is the baseline; then in order of creation within the campaign
    idea_id: int
    parent_id: int | None
    status: TrialStatus
    seed: int
    label: FailureLabel | None = None
    score: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    exit_code: int | None = None
    duration_s: float | None = None
    log_tail: str = ""
    code_hash: str = ""
    code_diff: str = ""  # the code this trial runs, as a diff against the environment's baseline
    retry_of: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    analysis: str = ""  # the analyst's note on the outcome
    worker: str = ""  # who claimed it
    lease_token: int = 0  # fencing token of the latest claim: only its holder may record the result
    lease_expires_at: datetime | None = None  # None: held without expiry (the local controller)
    curve: tuple[Mapping[str, float], ...] = ()  # training progress, {"step": n, "loss": x, ...} each
    pinned: bool = False  # a person keeps it among the parents the strategy chooses from
    vetoed: bool = False  # a person forbids it as a parent
    role: TrialRole = TrialRole.SEARCH
    confirms: int | None = None  # the search trial a confirmation or a race re-runs
    test_score: float | None = None
    record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_search(self) -> bool:
        return self.role is TrialRole.SEARCH

    @property
    def certifies(self) -> bool:
        """Only a confirmation is scored on the test split: nothing the search chooses by ever is."""
        return self.role is TrialRole.CONFIRM

    @property
    def spends_search_budget(self) -> bool:
        return self.role in BUDGET_ROLES

    @property
    def is_scored(self) -> bool:
        return self.status is TrialStatus.SUCCEEDED and self.score is not None

    @property
    def measures_its_code(self) -> bool:
        """It ran, runs or waits to run: another trial with its code and seed would only measure it again.
        Not so for an interrupted trial (it is retried) nor one that failed before running (a patch_failed
        trial has no code of its own)."""
        if self.status is TrialStatus.FAILED:
            return self.duration_s is not None
        return self.status is not TrialStatus.INTERRUPTED


@dataclass(frozen=True)
class Usage:
    """Tokens spent and what they cost; calls to a model without a price count in tokens only."""

    calls: int = 0
    input_tokens: int = 0  # every prompt token, cached ones included
    output_tokens: int = 0
    cached_tokens: int = 0
    dollars: float = 0.0
    unpriced_calls: int = 0  # calls whose dollars are unknown (not in `dollars`)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


@dataclass(frozen=True)
class LLMCall:
    """One request to a model and its answer, exactly as sent and received (API keys are never part of it)."""

    id: int
    campaign_id: int
    role: Role
    model: str  # the model spec, e.g. anthropic:claude-sonnet-4-5
    template: str  # the prompt template and its version, e.g. implementer@v1
    prompt: Mapping[str, Any]  # {"system": ..., "messages": [{"role", "content"}, ...]}
    response: str
    error: str = ""  # why the call, or what it returned, was not usable
    usage: Usage = field(default_factory=Usage)
    attempts: int = 1
    duration_s: float = 0.0
    idea_id: int | None = None
    trial_id: int | None = None
    surface: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class Lease:
    """A worker's claim on a running trial: renewed by heartbeats, void once it expires."""

    trial_id: int
    worker: str
    token: int  # fencing token: a result recorded with an older token is refused
    expires_at: datetime | None


@dataclass(frozen=True)
class WorkerInfo:
    """A worker process as it registered: the queues it takes and what it can run at once."""

    name: str  # host:pid
    queues: tuple[str, ...]
    capacity: Mapping[str, Any]  # {"slots": n} and, on a GPU worker, {"gpus": ["0"], "slots_per_gpu": k}
    started_at: datetime
    heartbeat_at: datetime


class Scope(enum.StrEnum):
    """What an API token may do; each scope includes the ones before it."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def allows(self, needed: Scope) -> bool:
        order = list(Scope)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class ApiToken:
    id: int
    name: str
    scope: Scope
    prefix: str  # the token's first characters, to tell tokens apart; never the whole token
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class TrialEvent:
    """A trial entering a state; ids grow with time, so a stream resumes after the last id it saw."""

    id: int
    campaign_id: int
    trial_id: int
    number: int
    status: TrialStatus
    at: datetime


class TrialSort(enum.StrEnum):
    NUMBER = "number"
    NUMBER_DESC = "-number"
    SCORE = "score"  # best first is the environment's direction: the caller picks score or -score
    SCORE_DESC = "-score"


@dataclass(frozen=True)
class TrialQuery:
    """A page of a campaign's trials: filters, an order, and where the last page ended."""

    statuses: tuple[TrialStatus, ...] = ()
    labels: tuple[FailureLabel, ...] = ()
    roles: tuple[TrialRole, ...] = ()  # all when empty
    min_score: float | None = None
    max_score: float | None = None
    sort: TrialSort = TrialSort.NUMBER
    after: str | None = None  # the cursor the previous page returned
    limit: int = 50


@dataclass(frozen=True, slots=True)
class TrialBrief:
    """A trial as lists show it: its outcome and place in the lineage (its parent by number), without
    its diff, log, metrics or curve, which make a row many times larger."""

    id: int
    number: int
    parent: int | None  # the parent's number; None for the baseline
    status: TrialStatus
    label: FailureLabel | None
    score: float | None
    pinned: bool
    vetoed: bool
    seed: int
    role: TrialRole
    worker: str
    duration_s: float | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class TrialPage:
    trials: tuple[TrialBrief, ...]
    next: str | None  # the cursor of the following page; None on the last one


@dataclass(frozen=True)
class LineageEntry:
    """One trial as the lineage graph shows it: numbers instead of ids, its idea's title and origin."""

    number: int
    parent: int | None
    retry_of: int | None
    status: TrialStatus
    label: FailureLabel | None
    score: float | None
    title: str
    origin: IdeaOrigin
    pinned: bool
    vetoed: bool
    role: TrialRole = TrialRole.SEARCH
