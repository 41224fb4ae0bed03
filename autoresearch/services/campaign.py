"""Create and drive a campaign: the steady-state loop of propose -> implement -> run -> record.

The controller keeps `concurrency` trials in flight. Every step is written to the store as it
happens, so a campaign killed at any point resumes where it was: finished trials are kept and
never run again, and trials that were in flight are run again as retries.
"""

from __future__ import annotations

import fcntl
import math
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from autoresearch.domain.confirmation import (
    Verdict,
    clearly_better,
    confirm_candidates,
    fresh_seeds,
    race_seeds,
    seed_noise,
    verdict,
)
from autoresearch.domain.diffs import apply_diff
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import (
    Campaign,
    CampaignStatus,
    FailureLabel,
    Idea,
    IdeaOrigin,
    Trial,
    TrialResult,
    TrialRole,
    TrialStatus,
)
from autoresearch.domain.placement import GpuPool
from autoresearch.domain.programs import Programs
from autoresearch.domain.strategies import STRATEGIES, Population, Strategy
from autoresearch.environment import ENVIRONMENT_FILE, Environment
from autoresearch.errors import ConfigError
from autoresearch.services.execution import Execution, LocalExecution
from autoresearch.services.implementer import DiffImplementer, Implementer
from autoresearch.services.proposer import Proposal, Proposer, ProposerStopped, proposal_of
from autoresearch.services.runner import TrialRunner
from autoresearch.services.store import Store
from autoresearch.settings import Settings

COUNTED = (TrialStatus.SUCCEEDED, TrialStatus.FAILED)  # interrupted trials do not use up the budget
MAX_TRIES = 3  # runs of one trial whose worker keeps dying, before its worker_lost label stays
STEERING_POLL_S = 0.5  # how often a running campaign reads what was changed through the API
_PARENT_TRIES = 8  # parents to try before concluding the proposer has nothing left
_DUPLICATES_IN_A_ROW = 16  # near-duplicate ideas in a row before concluding the same


class NoveltyGate(Protocol):
    def load(self, ideas: list[Idea]) -> None:
        """Remember the campaign's earlier ideas."""

    def duplicate_of(self, hypothesis: str) -> tuple[int, float] | None:
        """The earlier idea this one nearly repeats, with their similarity; None when it is new."""

    def add(self, idea: Idea) -> None: ...


class Analyst(Protocol):
    def analyse(self, trial: Trial, lineage: Lineage, baseline_id: int) -> str | None:
        """A short note on a finished trial for later prompts; None when there is none to give."""


class CampaignObserver(Protocol):
    def trial_started(self, trial: Trial, idea: Idea) -> None: ...
    def trial_finished(self, trial: Trial, idea: Idea) -> None: ...
    def note(self, message: str) -> None: ...


class SilentObserver:
    def trial_started(self, trial: Trial, idea: Idea) -> None:
        pass

    def trial_finished(self, trial: Trial, idea: Idea) -> None:
        pass

    def note(self, message: str) -> None:
        pass


class ObserverGroup:
    """Tells every observer (the live view, a tracker...) of each event, in order."""

    def __init__(self, *observers: CampaignObserver) -> None:
        self.observers = observers

    def trial_started(self, trial: Trial, idea: Idea) -> None:
        for observer in self.observers:
            observer.trial_started(trial, idea)

    def trial_finished(self, trial: Trial, idea: Idea) -> None:
        for observer in self.observers:
            observer.trial_finished(trial, idea)

    def note(self, message: str) -> None:
        for observer in self.observers:
            observer.note(message)


def _same_code_reason(earlier: Trial) -> str:
    if earlier.status is TrialStatus.SUCCEEDED:
        fate = f"which scored {earlier.score:g}"
    elif earlier.status is TrialStatus.FAILED:
        fate = f"which failed ({earlier.label})"
    else:
        fate = f"which is {earlier.status}"
    return f"the same program as trial {earlier.number} at the same seed, {fate}: not run again"


@dataclass(frozen=True)
class CampaignOutcome:
    campaign: Campaign
    stopped_by_user: bool
    exhausted: bool  # the proposer had nothing left to try
    proposer_stopped: str  # why the proposer stopped early (a budget spent...), or ""
    best: Trial | None  # by its search score
    baseline: Trial | None
    confirmed: Verdict | None  # what the confirmation runs say, when there were any


def create_campaign(
    store: Store,
    env: Environment,
    *,
    preset: str | None,
    strategy: str,
    trials: int,
    concurrency: int,
    seed: int,
    name: str | None,
    goal: str,
    train_seed: int = 0,
    confirm_top: int = 0,
    confirm_seeds: int = 0,
    race: int = 0,
    seconds_budget: float | None = None,
    agents: Mapping[str, Any] | None = None,
    distributed: bool = False,
) -> Campaign:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1 (the baseline), got {trials}")
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {concurrency}")
    if confirm_top < 0 or confirm_seeds < 0 or (confirm_top > 0) != (confirm_seeds > 0):
        raise ConfigError(
            f"--confirm-top {confirm_top} --confirm-seeds {confirm_seeds}: both at least 1, or both 0 "
            "(no confirmation)"
        )
    if confirm_seeds == 1:
        raise ConfigError("--confirm-seeds 1 measures no noise: give at least 2, or 0 for no confirmation")
    if race < 0:
        raise ConfigError(f"--race must be 0 (no racing) or more, got {race}")
    if seconds_budget is not None and not seconds_budget > 0:
        raise ConfigError(f"--budget-seconds must be more than 0, got {seconds_budget}")
    preset_name, chosen = env.preset(preset)
    if unset := [key for key, path in chosen.inputs.items() if not path]:
        raise ConfigError(
            f"{env.root / ENVIRONMENT_FILE}: presets.{preset_name}.inputs.{unset[0]} is not set: "
            "give it the absolute path of a local folder or file (see the preset's description)"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return store.create_campaign(
        name=name or f"{env.name}-{preset_name}-{stamp}",
        environment=env.name,
        preset=preset_name,
        strategy=strategy,
        goal=goal,
        trial_budget=trials,
        concurrency=concurrency,
        seed=seed,
        train_seed=train_seed,
        confirm_top=confirm_top,
        confirm_seeds=confirm_seeds,
        race=race,
        seconds_budget=seconds_budget,
        agents=agents,
        distributed=distributed,
    )


@contextmanager
def campaign_lock(settings: Settings, campaign: Campaign) -> Iterator[None]:
    """One controller per campaign on this machine; a second gets a clear error."""
    path = settings.data_dir / "locks" / f"campaign-{campaign.id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(f"campaign {campaign.name!r} is already running (pid {holder})") from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class CampaignController:
    """Drives one campaign to its trial budget; `run` is also how a stopped campaign resumes.

    Where ideas are implemented and trials run is the `execution`'s business: this process by
    default, the cluster's workers under `autoresearch controller`."""

    def __init__(
        self,
        store: Store,
        campaign: Campaign,
        env: Environment,
        runner: TrialRunner | None,
        proposer: Proposer,
        observer: CampaignObserver | None = None,
        *,
        implementer: Implementer | None = None,
        novelty: NoveltyGate | None = None,
        analyst: Analyst | None = None,
        gpus: GpuPool | None = None,
        execution: Execution | None = None,
    ) -> None:
        self.store = store
        self.campaign = campaign
        self.env = env
        self.proposer = proposer
        self.observer: CampaignObserver = observer or SilentObserver()
        self.strategy: Strategy = STRATEGIES[campaign.strategy]()
        self.baseline_code = env.read_editable()
        self.programs = Programs(self.baseline_code)
        # Trials already compared with the earlier ones: once is enough, since a trial that measures its
        # program only ever stops doing so, and the trials made later are not earlier ones.
        self.compared: set[int] = set()
        self.novelty = novelty
        self.analyst = analyst
        self.proposer_stopped = ""
        self.exhausted = False  # the proposer had nothing left for any parent
        self.steered_at = -math.inf  # when the campaign's record was last read for changes made outside
        self.steered_stop = False  # paused or cancelled from outside
        self.pinned: set[int] = set()
        self.vetoed: set[int] = set()
        self.last_idea_id = 0  # ideas after this one are new to the controller
        self.unimplemented: list[Idea] = []  # ideas with no trial yet, implemented before any new one
        self.to_race: list[Trial] = []  # promising children waiting for their re-runs to be queued
        self.racing: dict[int, list[int]] = {}  # a child -> its re-runs: it is no parent until they end
        if execution is None:
            if runner is None:
                raise ValueError("a campaign run in this process needs a runner")
            _, preset = env.preset(campaign.preset)
            gpu_need = env.resources(preset).gpu
            if gpus is not None and gpu_need > 0 and not gpus.fits_ever(gpu_need):
                raise ConfigError(
                    f"preset {campaign.preset!r} needs {gpu_need:g} GPUs; this machine offers {len(gpus.free)}"
                )
            execution = LocalExecution(
                store,
                runner,
                implementer or DiffImplementer(env, self.baseline_code),
                self.baseline_code,
                concurrency=campaign.concurrency,
                seed=campaign.train_seed,
                gpus=gpus,
                gpu_need=gpu_need,
            )
        self.execution = execution
        self.code_of = lru_cache(maxsize=256)(self._code_of)

    # -- the loop -------------------------------------------------------------------------------
    def run(self, cancel: threading.Event | None = None) -> CampaignOutcome:
        """Keep `concurrency` trials running and, on the cluster, `run_ahead` more implemented and
        waiting, until the budget is spent, the proposer has nothing left, or `cancel` is set."""
        cancel = cancel or threading.Event()
        store, campaign, execution = self.store, self.campaign, self.execution
        try:
            in_flight = execution.recover(campaign.id)
            store.set_campaign_status(campaign.id, CampaignStatus.RUNNING)
            self._load()
            running: dict[Future[Trial], Trial] = {}
            implementing: dict[Future[Trial], Idea] = {}
            for trial in in_flight:
                running[execution.watch(trial)] = trial
                self.observer.trial_started(trial, self.lineage.idea_of(trial))
            while True:
                self._follow_steering(cancel)
                while (
                    self._start_run(running, cancel)
                    or self._start_race(running, implementing, cancel)
                    or self._start_implementation(running, implementing, cancel)
                ):
                    pass
                if cancel.is_set() and execution.detached:
                    break
                if not (running or implementing) and not self._confirm_the_best(cancel):
                    break
                done, _ = wait([*running, *implementing], timeout=1.0, return_when=FIRST_COMPLETED)
                for future in done:
                    if future in implementing:
                        implementing.pop(future)
                        try:
                            self._implemented(future.result())
                        except ProposerStopped as exc:
                            self._stop_proposing(exc)
                    else:
                        running.pop(future)
                        self._finished(future.result(), retry=not cancel.is_set())
        finally:
            execution.close()
        self._follow_steering(cancel, now=True)  # a pause in the last moments is not overwritten below
        stopped = cancel.is_set()
        # Guarded: a pause or cancel from the API in the last moment wins. On the cluster, stopping one
        # controller leaves the campaign running for the next.
        if not stopped:
            store.move_campaign(
                campaign.id, sources=(CampaignStatus.RUNNING,), target=CampaignStatus.FINISHED
            )
        elif not (execution.detached or self.steered_stop):
            store.move_campaign(campaign.id, sources=(CampaignStatus.RUNNING,), target=CampaignStatus.STOPPED)
        if execution.broken:
            self.observer.note(f"stopped starting trials: {execution.broken}; fix it, then resume")
        if self.exhausted and not stopped:
            self.observer.note(
                "the proposer has no untried idea left for any good parent: the campaign ends early"
            )
        best_id = self.population.best(1)
        baseline = self.lineage.trials.get(self.baseline_id)
        return CampaignOutcome(
            campaign=store.get_campaign(campaign.id),
            stopped_by_user=stopped,
            exhausted=self.exhausted,
            proposer_stopped=self.proposer_stopped,
            best=self.lineage.trials[best_id[0]] if best_id else None,
            baseline=baseline,
            confirmed=self.verdict(),
        )

    def verdict(self) -> Verdict | None:
        baseline = self.lineage.trials.get(self.baseline_id)
        if baseline is None:
            return None
        trials = sorted(self.lineage.trials.values(), key=lambda t: t.number)
        direction = self.env.spec.metric.direction
        return verdict(trials, baseline, direction)

    # -- confirmation ---------------------------------------------------------------------------
    def _confirm_the_best(self, cancel: threading.Event) -> bool:
        """Once the search has nothing in flight and nothing left to start: queue the confirmation of its
        best programs (the baseline's was queued with the baseline). True when trials were queued."""
        if cancel.is_set() or self.execution.broken or not self.campaign.confirm_seeds:
            return False
        best = confirm_candidates(
            (self.lineage.trials[trial_id] for trial_id in self.population.ranked()),
            self.lineage.trials[self.baseline_id],
            self.campaign.confirm_top,
            lambda t: self.programs.of_diff(t.code_diff),
        )
        queued = [trial for chosen in best for trial in self._confirm(chosen)]
        if queued:
            self.observer.note(
                f"confirming the best {len(best)} programs on {self.campaign.confirm_seeds} fresh seeds "
                f"({len(queued)} trials)"
            )
        return bool(queued)

    def _confirm(self, trial: Trial) -> list[Trial]:
        """Queue the re-runs of the trial's program on each fresh seed it has no confirmation on yet."""
        done = {
            t.seed
            for t in self.lineage.trials.values()
            if t.role is TrialRole.CONFIRM and t.idea_id == trial.idea_id
        }
        seeds = fresh_seeds(self.campaign.train_seed, self.campaign.confirm_seeds)
        return [self._rerun(trial, seed, TrialRole.CONFIRM) for seed in seeds if seed not in done]

    def _rerun(self, trial: Trial, seed: int, role: TrialRole) -> Trial:
        """Queue the trial's program once more, on another seed: a race or a confirmation of it."""
        rerun = self.store.add_trial(
            self.campaign.id,
            idea_id=trial.idea_id,
            parent_id=trial.id,
            seed=seed,
            code_diff=trial.code_diff,
            role=role,
            confirms=trial.id,
        )
        self.lineage.add(rerun)
        self.ready.append(rerun)
        return rerun

    def _follow_steering(self, cancel: threading.Event, *, now: bool = False) -> None:
        """Take in what people changed through the API, at most every STEERING_POLL_S: a pause or cancel,
        new limits, ideas they seeded, trials they pinned or vetoed."""
        if not now and time.monotonic() - self.steered_at < STEERING_POLL_S:
            return
        self.steered_at = time.monotonic()
        before, self.campaign = self.campaign, self.store.get_campaign(self.campaign.id)
        if self.proposer_stopped and self.campaign.agents != before.agents:
            self.observer.note("the LLM budget changed: proposing again")
            self.proposer_stopped = ""
        if self.campaign.status is not CampaignStatus.RUNNING and not cancel.is_set():
            self.steered_stop = True
            self.observer.note(f"the campaign was {self.campaign.status} from outside: stopping")
            cancel.set()
        for idea in self.store.list_ideas(self.campaign.id, after=self.last_idea_id):
            self.last_idea_id = max(self.last_idea_id, idea.id)
            if idea.id not in self.lineage.ideas:
                self.lineage.add_idea(idea)
                if idea.parent_trial_ids and idea.duplicate_of is None:
                    self.unimplemented.append(idea)
                    self.exhausted = False  # a person gave it something new to try
                    self.observer.note(f"idea {idea.id} was seeded: {idea.title}")
        steered = self.store.steered_trials(self.campaign.id)
        self.pinned = {t.id for t in steered if t.pinned and t.is_scored}
        self.vetoed = {t.id for t in steered if t.vetoed}

    def _choose_parent(self, rng: random.Random) -> Trial | None:
        """The strategy's choice, never a vetoed trial; half the time a pinned one, while there are any."""
        if self.pinned and rng.random() < 0.5:
            return self.lineage.trials[rng.choice(sorted(self.pinned))]
        for _ in range(_PARENT_TRIES):
            chosen = self.strategy.choose_parent(self.population, rng)
            if chosen not in self.vetoed:
                return self.lineage.trials[chosen]
        return None

    def _start_run(self, running: dict[Future[Trial], Trial], cancel: threading.Event) -> bool:
        if cancel.is_set() or self.execution.broken or not self.ready:
            return False
        trial = self.ready[0]
        if trial.id not in self.compared and (earlier := self._earlier_with_the_same_code(trial)) is not None:
            result = TrialResult.failed(FailureLabel.SAME_CODE, _same_code_reason(earlier))
            if ended := self.store.finish_trial(trial.id, result):  # else a worker took it: watched below
                self.ready.pop(0)
                self._finished(ended, retry=False)
                return True
        if len(running) >= self.campaign.concurrency:
            return False
        future = self.execution.try_run(trial, self.code_of(trial.id), cancel)
        if future is None:
            return False  # no room on the GPUs: wait for a trial to finish
        self.ready.pop(0)
        running[future] = trial
        if not future.done():  # one that is done was moved by someone else: its result is read next
            trial = replace(trial, status=TrialStatus.RUNNING)
            self.lineage.add(trial)
            self.observer.trial_started(trial, self.lineage.idea_of(trial))
        return True

    def _earlier_with_the_same_code(self, trial: Trial) -> Trial | None:
        """An earlier trial at the same seed that measures the same program already."""
        self.compared.add(trial.id)
        program = self.programs.of_diff(trial.code_diff)
        for other in self.lineage.trials.values():
            if (
                other.id < trial.id
                and other.seed == trial.seed
                and other.measures_its_code
                and self.programs.of_diff(other.code_diff) == program
            ):
                return other
        return None

    def _start_implementation(
        self,
        running: dict[Future[Trial], Trial],
        implementing: dict[Future[Trial], Idea],
        cancel: threading.Event,
    ) -> bool:
        """Implement one more idea when fewer are ready than the open run slots (plus the run-ahead)."""
        if cancel.is_set() or self.execution.broken or self.exhausted or self.proposer_stopped:
            return False
        if self._search_budget_left(running, implementing) <= 0:
            return False
        open_slots = max(self.campaign.concurrency - len(running), 0)
        if len(self.ready) + len(implementing) >= open_slots + self.execution.run_ahead:
            return False
        if self.retries:
            self.ready.append(self._retry(self.retries.pop(0)))
            return True
        try:
            chosen = self._next_idea()
            if chosen is None:
                self.exhausted = True
                return False
            idea, proposal, parent = chosen
            implementing[self.execution.implement(idea, proposal, parent, self.code_of(parent.id))] = idea
        except ProposerStopped as exc:  # an LLM budget is spent: the idea stays unimplemented on record
            self._stop_proposing(exc)
            return False
        return True

    def _search_budget_left(
        self, running: Mapping[Future[Trial], Trial], implementing: Mapping[Any, Idea]
    ) -> int:
        """Trials the search may still start: its budget less what ran and what is under way; none once its
        trials trained for the campaign's budget in seconds, when it has one."""
        seconds = self.campaign.seconds_budget
        if seconds is not None and self._trained_seconds() >= seconds:
            return 0
        planned = sum(t.spends_search_budget for t in (*running.values(), *self.ready)) + len(implementing)
        return self.campaign.trial_budget - self.counted - planned

    def _trained_seconds(self) -> float:
        """How long the search's trials trained, by the runner's clock."""
        return sum(
            t.metrics.get("train_seconds", 0.0)
            for t in self.lineage.trials.values()
            if t.spends_search_budget and t.status.is_terminal
        )

    # -- racing: a promising child is re-run before it may be a parent -----------------------------
    def noise(self) -> float | None:
        """The baseline's seed-to-seed sd: its search run, its races and its confirmation runs."""
        baseline = self.lineage.trials.get(self.baseline_id)
        if baseline is None:
            return None
        return seed_noise(
            t.score
            for t in self.lineage.trials.values()
            if t.idea_id == baseline.idea_id and t.is_scored and t.score is not None
        )

    def _promising(self, child: Trial) -> bool:
        """It would be the new best, but not by more than the noise: one seed's luck may have put it there."""
        best = self.population.best(1)
        if not self.campaign.race or not best or child.score is None:
            return False
        standing = self.population.scores[best[0]]
        direction = self.env.spec.metric.direction
        return direction.better(child.score, standing) and not clearly_better(
            child.score, standing, self.noise(), direction
        )

    def _start_race(
        self,
        running: Mapping[Future[Trial], Trial],
        implementing: Mapping[Future[Trial], Idea],
        cancel: threading.Event,
    ) -> bool:
        """Queue the re-runs of the next promising child; with no budget left for them, it stands on its
        one score."""
        if cancel.is_set() or self.execution.broken or not self.to_race:
            return False
        child = self.to_race.pop(0)
        seeds = race_seeds(self.campaign.train_seed, self.campaign.race)
        if self._search_budget_left(running, implementing) < len(seeds):
            self._stand(child)
            return True
        self.racing[child.id] = [self._rerun(child, seed, TrialRole.RACE).id for seed in seeds]
        self.observer.note(
            f"trial {child.number} would be the new best, within the noise: re-running it on "
            f"{len(seeds)} more seed(s) before it may be a parent"
        )
        return True

    def _raced(self, rerun: Trial) -> None:
        """A re-run ended: once its child's re-runs all have, the child stands on the mean of its scores."""
        child_id = rerun.confirms
        if child_id is None or child_id not in self.racing:
            return
        reruns = [self.lineage.trials[i] for i in self.racing[child_id]]
        retrying = {t.id for t in self.retries}
        if any(not t.status.is_terminal or t.id in retrying for t in reruns):
            return
        del self.racing[child_id]
        self._stand(self.lineage.trials[child_id], reruns)

    def _stand(self, child: Trial, reruns: Sequence[Trial] = ()) -> None:
        """The child joins the parents the strategy chooses from."""
        standing = self._standing(child, reruns)
        self.population.add(child.id, standing)
        self.exhausted = False  # a new parent: the proposer may have ideas for it
        if reruns:
            best = " (the new best)" if self.population.best(1) == [child.id] else ""
            self.observer.note(
                f"trial {child.number} stands at {standing:.4f}, its mean over its seeds{best}"
            )

    @staticmethod
    def _standing(child: Trial, reruns: Sequence[Trial]) -> float:
        scores = [s for s in (child.score, *(t.score for t in reruns if t.is_scored)) if s is not None]
        return sum(scores) / len(scores)

    def _stop_proposing(self, why: ProposerStopped) -> None:
        if not self.proposer_stopped:
            self.proposer_stopped = str(why)
            self.observer.note(f"no more new ideas: {why}")

    def _load(self) -> None:
        trials = self.store.list_trials(self.campaign.id)
        ideas = self.store.list_ideas(self.campaign.id)
        self.lineage = Lineage.of(ideas, trials)
        self.last_idea_id = max((idea.id for idea in ideas), default=0)
        retried = {t.retry_of for t in trials if t.retry_of is not None}
        with_trials = {t.idea_id for t in trials}
        self.unimplemented = [
            idea
            for idea in self.lineage.ideas.values()
            if idea.id not in with_trials and idea.duplicate_of is None and idea.parent_trial_ids
        ]
        self.retries = [t for t in trials if t.status is TrialStatus.INTERRUPTED and t.id not in retried]
        self.ready = [t for t in trials if t.status is TrialStatus.PENDING]  # implemented, not yet running
        self.counted = sum(t.status in COUNTED and t.spends_search_budget for t in trials)
        baseline = next((t for t in trials if t.number == 0), None) or self._add_baseline()
        self.baseline_id = baseline.id
        self.population = Population(self.env.spec.metric.direction, baseline.id)
        reruns: dict[int, list[Trial]] = {}
        for t in trials:
            if t.role is TrialRole.RACE and t.confirms is not None and t.id not in retried:
                reruns.setdefault(t.confirms, []).append(t)
        for t in trials:
            if not (t.is_search and t.is_scored and t.score is not None):
                continue
            if any(
                not r.status.is_terminal or r.status is TrialStatus.INTERRUPTED for r in reruns.get(t.id, ())
            ):
                self.racing[t.id] = [r.id for r in reruns[t.id]]  # the interrupted ones are retried below
            else:
                self.population.add(t.id, self._standing(t, reruns.get(t.id, [])))
        if self.novelty is not None:
            self.novelty.load([i for i in self.lineage.ideas.values() if i.origin is not IdeaOrigin.BASELINE])

    def _add_baseline(self) -> Trial:
        idea = self.store.add_idea(
            self.campaign.id,
            hypothesis="The environment's recipe as shipped: the baseline every idea is measured against.",
            origin=IdeaOrigin.BASELINE,
            key="baseline",
        )
        self.lineage.add_idea(idea)
        trial = self.store.add_trial(
            self.campaign.id, idea_id=idea.id, parent_id=None, seed=self.campaign.train_seed
        )
        self.lineage.add(trial)
        self.ready.append(trial)
        # First: the baseline's spread over seeds is the noise every gain is read against.
        self._confirm(trial)
        return trial

    def _retry(self, lost: Trial) -> Trial:
        """A new trial of an interrupted one: same idea, parent, seed and code."""
        trial = self.store.add_trial(
            self.campaign.id,
            idea_id=lost.idea_id,
            parent_id=lost.parent_id,
            seed=lost.seed,
            code_diff=lost.code_diff,
            retry_of=lost.id,
            role=lost.role,
            confirms=lost.confirms,
        )
        self.lineage.add(trial)
        if lost.confirms in self.racing:
            self.racing[lost.confirms] = [trial.id if i == lost.id else i for i in self.racing[lost.confirms]]
        if lost.id == self.baseline_id:
            self.baseline_id = self.population.baseline_id = trial.id
        return trial

    def _next_idea(self) -> tuple[Idea, Proposal, Trial] | None:
        """An idea whose implementation was cut short (a kill, a spent budget), else a new idea on a
        parent the strategy chooses; None when the proposer has nothing left for any parent."""
        if self.unimplemented:
            idea = self.unimplemented.pop(0)
            return idea, proposal_of(idea), self.lineage.trials[idea.parent_trial_ids[0]]
        rng = random.Random(f"{self.campaign.seed}:{len(self.lineage.trials)}:{len(self.lineage.ideas)}")
        surface = self._next_surface()
        parents_tried = duplicates = 0
        while parents_tried < _PARENT_TRIES and duplicates < _DUPLICATES_IN_A_ROW:
            parent = self._choose_parent(rng)
            if parent is None:
                parents_tried += 1
                continue
            proposal = self.proposer.propose(parent, self.code_of(parent.id), self.lineage, rng, surface)
            if proposal is None:
                parents_tried += 1
            elif not self._dropped_as_duplicate(parent, proposal):
                return self._add_idea(parent, proposal), proposal, parent
            else:
                duplicates += 1
        return None

    def _next_surface(self) -> str | None:
        """Under `specialists`, the surface furthest behind its equal share of the ideas; else None."""
        unscored = self.env.spec.unscored(self.campaign.preset)
        surfaces = [surface for surface in self.env.spec.surfaces if surface not in unscored]
        if not (self.strategy.by_surface and surfaces):
            return None
        counts = dict.fromkeys(surfaces, 0)
        for idea in self.lineage.ideas.values():
            if idea.surface in counts and idea.duplicate_of is None:
                counts[idea.surface] += 1
        return min(surfaces, key=lambda surface: counts[surface])

    def _dropped_as_duplicate(self, parent: Trial, proposal: Proposal) -> bool:
        """The novelty gate: a near-copy of an earlier idea is recorded as such and never implemented."""
        if self.novelty is None or proposal.origin is not IdeaOrigin.LLM:
            return False
        found = self.novelty.duplicate_of(proposal.hypothesis)
        if found is None:
            return False
        original, similarity = found
        idea = self._add_idea(parent, proposal, duplicate_of=original)
        self.observer.note(
            f"dropped a near-duplicate idea ({similarity:.2f} similar to idea {original}): {idea.title}"
        )
        return True

    def _add_idea(self, parent: Trial, proposal: Proposal, duplicate_of: int | None = None) -> Idea:
        idea = self.store.add_idea(
            self.campaign.id,
            hypothesis=proposal.hypothesis,
            origin=proposal.origin,
            surface=proposal.surface,
            key=proposal.key,
            parent_trial_ids=(parent.id,),
            diff=proposal.diff,
            rationale=proposal.rationale,
            llm_call_id=proposal.llm_call_id,
            duplicate_of=duplicate_of,
        )
        self.lineage.add_idea(idea)
        if self.novelty is not None and duplicate_of is None:
            self.novelty.add(idea)
        return idea

    def _implemented(self, trial: Trial) -> None:
        """An idea's trial exists: it waits for a run slot, or it is finished already (its patch failed)."""
        self.lineage.add(trial)
        if trial.status is TrialStatus.PENDING:
            self.ready.append(trial)
        else:
            self._finished(trial, retry=False)

    def _finished(self, finished: Trial, *, retry: bool) -> None:
        """A trial's record is final: score it, tell the observers, ask the analyst; a trial whose worker
        died is tried again (at most MAX_TRIES times in all) unless the campaign is stopping."""
        self.lineage.add(finished)
        if not finished.status.is_terminal:  # another process took it first: its record is not ours to end
            return
        if finished.is_search and finished.is_scored and finished.score is not None:
            if self._promising(finished):
                self.to_race.append(finished)
            else:
                self._stand(finished)  # a new parent: the proposer may have ideas for it
        self.counted += finished.status in COUNTED and finished.spends_search_budget
        self.observer.trial_finished(finished, self.lineage.idea_of(finished))
        if finished.label is FailureLabel.WORKER_LOST and retry and not self.execution.broken:
            if self._tries(finished) < MAX_TRIES:
                self.retries.append(finished)
            else:
                self.observer.note(f"trial {finished.number} lost its worker {MAX_TRIES} times: not retried")
        if finished.role is TrialRole.RACE:
            self._raced(finished)
        ran = finished.duration_s is not None  # a patch that never ran has nothing for the analyst to read
        if (
            self.analyst is not None
            and ran
            and finished.is_search
            and finished.status in COUNTED
            and finished.id != self.baseline_id
        ):
            note = self.analyst.analyse(finished, self.lineage, self.baseline_id)
            if note:
                self.store.set_trial_analysis(finished.id, note)
                self.lineage.add(replace(finished, analysis=note))

    def _tries(self, trial: Trial) -> int:
        tries = 1
        while trial.retry_of is not None:
            tries, trial = tries + 1, self.lineage.trials[trial.retry_of]
        return tries

    def _code_of(self, trial_id: int) -> Mapping[str, str]:
        diff = self.lineage.trials[trial_id].code_diff
        return apply_diff(self.baseline_code, diff) if diff else self.baseline_code
