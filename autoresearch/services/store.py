"""The one storage interface every backend implements (SQLite and PostgreSQL through SQLAlchemy).

The database is the truth: a trial changes state only through a guarded statement that says
whether this caller won, never by reading and then writing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from autoresearch.domain.model import (
    ApiToken,
    Campaign,
    CampaignStatus,
    FailureLabel,
    Idea,
    IdeaOrigin,
    Lease,
    LineageEntry,
    LLMCall,
    Patch,
    Role,
    Scope,
    Trial,
    TrialBrief,
    TrialEvent,
    TrialPage,
    TrialQuery,
    TrialResult,
    TrialRole,
    TrialStatus,
    Usage,
    WorkerInfo,
)


class Store(ABC):
    # campaigns -------------------------------------------------------------------------------
    @abstractmethod
    def create_campaign(
        self,
        *,
        name: str,
        environment: str,
        preset: str,
        strategy: str,
        goal: str,
        trial_budget: int,
        concurrency: int,
        seed: int,
        train_seed: int = 0,
        confirm_top: int = 0,
        confirm_seeds: int = 0,
        race: int = 0,
        seconds_budget: float | None = None,
        agents: Mapping[str, Any] | None = None,
        distributed: bool = False,
    ) -> Campaign:
        """Raises ConfigError when the name is taken."""

    @abstractmethod
    def get_campaign(self, ref: int | str) -> Campaign:
        """By id, or by name (a str of digits is tried as a name first, then as an id). NotFound if absent."""

    @abstractmethod
    def list_campaigns(self) -> list[Campaign]:
        """Newest first."""

    @abstractmethod
    def set_campaign_status(self, campaign_id: int, status: CampaignStatus) -> None: ...

    @abstractmethod
    def move_campaign(
        self, campaign_id: int, *, sources: Collection[CampaignStatus], target: CampaignStatus
    ) -> Campaign | None:
        """Move the campaign to `target` if it is in one of `sources`, in one guarded statement: the moved
        campaign, or None when its status was another (someone moved it first)."""

    @abstractmethod
    def set_campaign_limits(
        self,
        campaign_id: int,
        *,
        trial_budget: int | None = None,
        concurrency: int | None = None,
        agents: Mapping[str, Any] | None = None,
    ) -> Campaign:
        """Change what is given (agents: the whole agents config, e.g. with a larger LLM budget)."""

    @abstractmethod
    def claim_campaign(self, campaign_id: int, *, controller: str, lease_s: float) -> int | None:
        """Become the campaign's one controller for `lease_s` seconds: the lease's token, or None while
        another controller's lease is alive."""

    @abstractmethod
    def renew_campaign(self, campaign_id: int, token: int, lease_s: float) -> bool:
        """The controller's heartbeat; False when the lease was lost (it expired and was taken)."""

    @abstractmethod
    def release_campaign(self, campaign_id: int, token: int) -> None:
        """Give the lease up at once, so another controller need not wait for it to expire."""

    # ideas -----------------------------------------------------------------------------------
    @abstractmethod
    def add_idea(
        self,
        campaign_id: int,
        *,
        hypothesis: str,
        origin: IdeaOrigin,
        surface: str = "",
        key: str = "",
        parent_trial_ids: Sequence[int] = (),
        diff: str = "",
        rationale: str = "",
        llm_call_id: int | None = None,
        duplicate_of: int | None = None,
    ) -> Idea: ...

    @abstractmethod
    def get_idea(self, idea_id: int) -> Idea: ...

    @abstractmethod
    def list_ideas(self, campaign_id: int, *, after: int = 0) -> list[Idea]:
        """In order of id; only those after idea `after` when it is given."""

    # trials ----------------------------------------------------------------------------------
    @abstractmethod
    def add_trial(
        self,
        campaign_id: int,
        *,
        idea_id: int,
        parent_id: int | None,
        seed: int,
        code_diff: str = "",
        retry_of: int | None = None,
        role: TrialRole = TrialRole.SEARCH,
        confirms: int | None = None,
    ) -> Trial:
        """A new PENDING trial numbered next in its campaign (the baseline is number 0). An idea has one
        first search trial (retry_of None): a second raises Conflict. Confirmations re-run an idea's
        program as often as they need."""

    @abstractmethod
    def first_trial_of(self, idea_id: int) -> Trial | None:
        """The trial an idea was implemented as (not a retry); None while it has none."""

    @abstractmethod
    def claim_trial(self, trial_id: int, *, worker: str = "", lease_s: float | None = None) -> Lease | None:
        """PENDING -> RUNNING in one guarded statement, with a new fencing token and a lease of
        `lease_s` seconds (None: no expiry); None when someone else moved it first."""

    @abstractmethod
    def renew_lease(self, trial_id: int, token: int, lease_s: float) -> bool:
        """A heartbeat: extend the lease; False when the trial is no longer running under `token`."""

    @abstractmethod
    def expire_leases(self, now: datetime | None = None, *, campaign_id: int | None = None) -> list[Trial]:
        """Move every running trial whose lease ran out to INTERRUPTED (worker_lost), in the campaign or,
        by default, in every campaign."""

    @abstractmethod
    def finish_trial(self, trial_id: int, result: TrialResult, *, token: int | None = None) -> Trial | None:
        """Record a result once: the finished trial, or None (nothing written) when it cannot move to
        it, or when `token` is given and is not the trial's current fencing token (a stale worker)."""

    @abstractmethod
    def interrupt_unfinished(self, campaign_id: int, label: FailureLabel, reason: str) -> list[Trial]:
        """Move every PENDING or RUNNING trial of the campaign to INTERRUPTED with `label`."""

    @abstractmethod
    def set_trial_analysis(self, trial_id: int, analysis: str) -> None:
        """The analyst's note on a finished trial (a note is not part of the result: it may come later)."""

    @abstractmethod
    def set_trial_flags(
        self, trial_id: int, *, pinned: bool | None = None, vetoed: bool | None = None
    ) -> Trial:
        """Pin (keep among the parents chosen from) or veto (never a parent) a trial; None leaves it."""

    @abstractmethod
    def trial_numbers(self, trial_ids: Collection[int]) -> dict[int, int]:
        """Each trial's number by its id, in one query; NotFound for an id with no trial."""

    @abstractmethod
    def lineage_entries(self, campaign_id: int) -> list[LineageEntry]:
        """Every trial as the lineage graph shows it, in order of number, in one query."""

    @abstractmethod
    def steered_trials(self, campaign_id: int) -> list[Trial]:
        """The campaign's pinned or vetoed trials."""

    @abstractmethod
    def page_trials(self, campaign_id: int, query: TrialQuery) -> TrialPage:
        """One page of the campaign's trials, filtered and sorted; ConfigError on a cursor not given out
        here. Sorted by score, unscored trials are left out."""

    @abstractmethod
    def ancestors(self, campaign_id: int, number: int) -> list[TrialBrief]:
        """Trial `number`'s parent, its parent's parent... up to the root, root first; NotFound when the
        campaign has no such trial."""

    @abstractmethod
    def last_event_id(self, campaign_id: int) -> int:
        """The id of the campaign's newest trial event; 0 when it has none."""

    @abstractmethod
    def trial_events(self, campaign_id: int, *, after: int = 0, limit: int = 500) -> list[TrialEvent]:
        """The states the campaign's trials entered after event `after`, oldest first."""

    @abstractmethod
    def get_trial(self, trial_id: int) -> Trial: ...

    @abstractmethod
    def get_trial_by_number(self, campaign_id: int, number: int) -> Trial: ...

    @abstractmethod
    def list_trials(
        self, campaign_id: int, *, statuses: Collection[TrialStatus] | None = None
    ) -> list[Trial]:
        """In order of number."""

    @abstractmethod
    def trial_seconds(self, campaign_id: int) -> float:
        """Seconds every trial of the campaign ran, failed and interrupted ones too."""

    @abstractmethod
    def count_trials(self, campaign_id: int, *, budget_only: bool = False) -> dict[TrialStatus, int]:
        """Every status present, with its count; of the trials that spend the budget only (the search's and
        its races, no confirmation) when `budget_only`."""

    # patches ---------------------------------------------------------------------------------
    @abstractmethod
    def add_patch(
        self,
        trial_id: int,
        *,
        attempt: int,
        diff: str,
        applied: bool,
        error: str = "",
        files: Sequence[str] = (),
        llm_call_id: int | None = None,
    ) -> Patch: ...

    @abstractmethod
    def list_patches(self, trial_id: int) -> list[Patch]:
        """In order of attempt."""

    # LLM calls --------------------------------------------------------------------------------
    @abstractmethod
    def add_llm_call(
        self,
        campaign_id: int,
        *,
        role: Role,
        model: str,
        template: str,
        prompt: Mapping[str, Any],
        response: str,
        error: str = "",
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        dollars: float | None = None,
        attempts: int = 1,
        duration_s: float = 0.0,
        idea_id: int | None = None,
        trial_id: int | None = None,
        surface: str = "",
    ) -> LLMCall: ...

    @abstractmethod
    def get_llm_call(self, call_id: int) -> LLMCall: ...

    @abstractmethod
    def reject_llm_call(self, call_id: int, error: str) -> None:
        """Record why an answer that came back could not be used (malformed JSON, no diff...)."""

    @abstractmethod
    def list_llm_calls(
        self, campaign_id: int, *, idea_id: int | None = None, trial_id: int | None = None
    ) -> list[LLMCall]:
        """In order of id; only those of the idea or trial when one is given."""

    @abstractmethod
    def llm_usage(self, campaign_id: int) -> dict[Role, Usage]:
        """What each role has spent in the campaign so far (roles that made no call are absent)."""

    # API tokens ------------------------------------------------------------------------------
    @abstractmethod
    def add_token(self, *, name: str, scope: Scope, token_hash: str, prefix: str) -> ApiToken:
        """Record a token by its hash (services.auth makes tokens and hashes them)."""

    @abstractmethod
    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, unless it was revoked."""

    @abstractmethod
    def revoke_token(self, token_id: int) -> ApiToken: ...

    @abstractmethod
    def list_tokens(self) -> list[ApiToken]:
        """Revoked ones too, in order of id."""

    # workers ---------------------------------------------------------------------------------
    @abstractmethod
    def register_worker(self, name: str, *, queues: Sequence[str], capacity: Mapping[str, Any]) -> None:
        """Announce a worker (again, after a restart under the same name)."""

    @abstractmethod
    def worker_heartbeat(self, name: str) -> None: ...

    @abstractmethod
    def forget_worker(self, name: str) -> None:
        """A worker that shut down cleanly."""

    @abstractmethod
    def list_workers(self) -> list[WorkerInfo]:
        """By name."""

    @abstractmethod
    def close(self) -> None: ...
