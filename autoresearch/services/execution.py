"""Where a campaign's ideas are implemented and its trials run: in this process, or on the cluster.

The controller is the same either way; it hands each idea and each trial to an `Execution` and
reads back futures of the store's records. `LocalExecution` implements inline and runs trials on a
thread pool with local GPU placement. `ClusterExecution` queues both as tasks for workers and
watches the database, which alone says what happened: the queue is only a way to wake a worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from autoresearch.domain.diffs import make_diff
from autoresearch.domain.model import FailureLabel, Idea, Trial, TrialResult, TrialStatus
from autoresearch.domain.placement import GpuPool, Placement
from autoresearch.services.implementer import Implementer
from autoresearch.services.proposer import Proposal, ProposerStopped
from autoresearch.services.runner import TrialJob, TrialRunner
from autoresearch.services.store import Store

log = logging.getLogger(__name__)
_MAX_LOCAL_TRIALS = 64


class Execution(Protocol):
    detached: bool  # trials carry on without the controller: stopping it leaves them to the workers
    run_ahead: int  # implementations kept ready beyond the open run slots, so workers never wait for one
    broken: str  # why trials cannot run here at all (then none should start); "" while they can

    def recover(self, campaign_id: int) -> list[Trial]:
        """After a restart: the campaign's trials still in flight elsewhere, to watch. Trials that died with
        the last controller are interrupted instead (retries follow)."""

    def implement(
        self, idea: Idea, proposal: Proposal, parent: Trial, parent_code: Mapping[str, str]
    ) -> Future[Trial]:
        """The idea's trial: PENDING, or already finished when the patch failed. Raises (or the future
        does) ProposerStopped when an LLM budget stops the implementer."""

    def try_run(self, trial: Trial, code: Mapping[str, str], cancel: threading.Event) -> Future[Trial] | None:
        """Start a pending trial; the future is its finished record. None when there is no room now."""

    def watch(self, trial: Trial) -> Future[Trial]:
        """The finished record of a trial already in flight."""

    def close(self) -> None: ...


def implement_idea(
    store: Store,
    implementer: Implementer,
    idea: Idea,
    proposal: Proposal,
    parent: Trial,
    parent_code: Mapping[str, str],
    baseline_code: Mapping[str, str],
    seed: int,
) -> Trial:
    """Turn an idea into its one trial, with every patch attempt on record. A patch that never applies
    makes a finished trial (patch_failed or illegal_edit) that never runs. Raises Conflict when the idea
    already has its trial (a redelivered task)."""
    impl = implementer.implement(idea, proposal, parent, parent_code)
    code_diff = make_diff(baseline_code, impl.code) if impl.code is not None else ""
    trial = store.add_trial(
        idea.campaign_id, idea_id=idea.id, parent_id=parent.id, seed=seed, code_diff=code_diff
    )
    for number, attempt in enumerate(impl.attempts, 1):
        store.add_patch(
            trial.id,
            attempt=number,
            diff=attempt.diff,
            applied=attempt.applied,
            error=attempt.error,
            files=attempt.files,
            llm_call_id=attempt.llm_call_id,
        )
    failure = impl.failure
    if failure is None:
        return trial
    label = failure.label or FailureLabel.PATCH_FAILED
    tries = f" after {len(impl.attempts)} attempts" if len(impl.attempts) > 1 else ""
    finished = store.finish_trial(trial.id, TrialResult.failed(label, f"{failure.error}{tries}"))
    return finished or store.get_trial(trial.id)


def _done(trial: Trial) -> Future[Trial]:
    future: Future[Trial] = Future()
    future.set_result(trial)
    return future


class LocalExecution:
    """Implement inline, run on `concurrency` threads of this process, place GPUs from a local pool."""

    detached = False
    run_ahead = 0  # implementing is inline: an idea is implemented when a slot opens for it

    def __init__(
        self,
        store: Store,
        runner: TrialRunner,
        implementer: Implementer,
        baseline_code: Mapping[str, str],
        *,
        concurrency: int,
        seed: int,
        gpus: GpuPool | None = None,
        gpu_need: float = 0.0,
    ) -> None:
        self.store = store
        self.runner = runner
        self.implementer = implementer
        self.baseline_code = baseline_code
        self.seed = seed
        self.gpus = gpus if gpu_need > 0 else None  # a CPU preset takes no GPU room
        self.gpu_need = gpu_need
        # Threads start as trials need them; the controller keeps within the campaign's concurrency, which
        # a person may raise while it runs.
        self.pool = ThreadPoolExecutor(
            max_workers=max(concurrency, _MAX_LOCAL_TRIALS), thread_name_prefix="trial"
        )
        self.broken = ""

    def recover(self, campaign_id: int) -> list[Trial]:
        self.store.interrupt_unfinished(
            campaign_id,
            FailureLabel.WORKER_LOST,
            "the process running the campaign stopped before it finished",
        )
        return []

    def implement(
        self, idea: Idea, proposal: Proposal, parent: Trial, parent_code: Mapping[str, str]
    ) -> Future[Trial]:
        trial = implement_idea(
            self.store, self.implementer, idea, proposal, parent, parent_code, self.baseline_code, self.seed
        )
        return _done(trial)

    def try_run(self, trial: Trial, code: Mapping[str, str], cancel: threading.Event) -> Future[Trial] | None:
        placement = self.gpus.try_place(self.gpu_need) if self.gpus is not None else None
        if self.gpus is not None and placement is None:
            return None
        if not self.store.claim_trial(trial.id):  # moved by someone else: take the store's word
            self._release(placement)
            return _done(self.store.get_trial(trial.id))
        devices = placement.devices if placement is not None else None
        job = TrialJob.of(trial, code, devices)
        return self.pool.submit(self._run, job, placement, cancel)

    def _run(self, job: TrialJob, placement: Placement | None, cancel: threading.Event) -> Trial:
        """A runner that raises is our fault, not the candidate's: the trial is `worker_lost`, and since
        the next trial would fail the same way, no new trial starts."""
        try:
            result = self.runner.run(job, cancel)
        except Exception as exc:
            self.broken = f"the runner failed: {type(exc).__name__}: {exc}"
            result = TrialResult.failed(FailureLabel.WORKER_LOST, self.broken)
        finally:
            self._release(placement)
        return self.store.finish_trial(job.trial_id, result) or self.store.get_trial(job.trial_id)

    def _release(self, placement: Placement | None) -> None:
        if self.gpus is not None and placement is not None:
            self.gpus.release(placement)

    def watch(self, trial: Trial) -> Future[Trial]:
        return _done(self.store.get_trial(trial.id))

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class Dispatcher(Protocol):
    """How tasks reach the workers (Celery in production)."""

    def implement(self, idea_id: int) -> None: ...
    def run(self, trial_id: int) -> None: ...
    def queued_trials(self) -> Collection[int] | None:
        """Every trial id a queue holds or a worker has taken; None when the broker cannot say."""

    def queued_ideas(self) -> Collection[int] | None: ...


@dataclass
class _Watched:
    future: Future[Trial]
    queued_at: float


class ClusterExecution:
    """Queue implementations and trials for the workers; a poller resolves futures from the database,
    expires the leases of dead workers, and queues again what a lost broker forgot."""

    detached = True
    broken = ""

    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        *,
        campaign_id: int,
        run_ahead: int,
        poll_s: float = 0.5,
        reconcile_s: float = 30.0,
        why_not_implement: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.campaign_id = campaign_id
        self.run_ahead = run_ahead
        self.poll_s = poll_s
        self.reconcile_s = reconcile_s
        self.why_not_implement = why_not_implement  # e.g. the implementer's LLM budget is spent
        self.lock = threading.Lock()
        self.trials: dict[int, _Watched] = {}
        self.ideas: dict[int, _Watched] = {}
        self.stopping = threading.Event()
        self.poller = threading.Thread(target=self._poll_forever, name="cluster-poller", daemon=True)
        self.poller.start()

    def recover(self, campaign_id: int) -> list[Trial]:
        return self.store.list_trials(campaign_id, statuses=(TrialStatus.RUNNING,))

    def implement(
        self, idea: Idea, proposal: Proposal, parent: Trial, parent_code: Mapping[str, str]
    ) -> Future[Trial]:
        why = self.why_not_implement()
        if why is not None:
            raise ProposerStopped(why)
        future: Future[Trial] = Future()
        with self.lock:
            self.ideas[idea.id] = _Watched(future, time.monotonic())
        self.dispatcher.implement(idea.id)
        return future

    def try_run(self, trial: Trial, code: Mapping[str, str], cancel: threading.Event) -> Future[Trial]:
        future = self.watch(trial)
        self.dispatcher.run(trial.id)
        return future

    def watch(self, trial: Trial) -> Future[Trial]:
        future: Future[Trial] = Future()
        with self.lock:
            self.trials[trial.id] = _Watched(future, time.monotonic())
        return future

    def close(self) -> None:
        self.stopping.set()
        self.poller.join()
        with self.lock:
            for watched in [*self.trials.values(), *self.ideas.values()]:
                watched.future.cancel()

    # -- the poller ----------------------------------------------------------------------------
    def _poll_forever(self) -> None:
        last_reconcile = time.monotonic()
        while not self.stopping.wait(self.poll_s):
            try:
                self._poll()
                if time.monotonic() - last_reconcile >= self.reconcile_s:
                    last_reconcile = time.monotonic()
                    self._reconcile()
            except Exception:  # the database or broker is away for a moment: try again next round
                log.exception("polling campaign %s failed; trying again", self.campaign_id)

    def _poll(self) -> None:
        self.store.expire_leases(campaign_id=self.campaign_id)  # the dead workers' trials end worker_lost
        with self.lock:
            trial_ids, idea_ids = list(self.trials), list(self.ideas)
        for trial_id in trial_ids:
            trial = self.store.get_trial(trial_id)
            if trial.status.is_terminal:
                self._resolve(self.trials, trial_id, trial)
        for idea_id in idea_ids:
            first = self.store.first_trial_of(idea_id)
            if first is not None:
                self._resolve(self.ideas, idea_id, first)

    def _resolve(self, watched: dict[int, _Watched], key: int, trial: Trial) -> None:
        with self.lock:
            entry = watched.pop(key, None)
        if entry is not None and not entry.future.done():
            entry.future.set_result(trial)

    def _reconcile(self) -> None:
        """Queue again each pending trial and unimplemented idea that no queue holds (the broker lost
        them: a Redis restart without persistence). A task queued twice runs once: workers take the
        database's word."""
        settled = time.monotonic() - self.reconcile_s  # give a fresh message time to be seen
        queued = self.dispatcher.queued_trials()
        if queued is not None:
            with self.lock:
                candidates = [tid for tid, w in self.trials.items() if w.queued_at < settled]
            for trial_id in candidates:
                if trial_id not in queued and self.store.get_trial(trial_id).status is TrialStatus.PENDING:
                    log.warning("trial %s was in no queue: queued again", trial_id)
                    self._requeued(self.trials, trial_id)
                    self.dispatcher.run(trial_id)
        queued = self.dispatcher.queued_ideas()
        if queued is not None:
            with self.lock:
                candidates = [iid for iid, w in self.ideas.items() if w.queued_at < settled]
            for idea_id in candidates:
                if idea_id in queued or self.store.first_trial_of(idea_id) is not None:
                    continue
                why = self.why_not_implement()
                if why is not None:  # the worker gave up on it: it stays unimplemented on record
                    with self.lock:
                        entry = self.ideas.pop(idea_id, None)
                    if entry is not None:
                        entry.future.set_exception(ProposerStopped(why))
                    continue
                log.warning("idea %s was in no queue: queued again", idea_id)
                self._requeued(self.ideas, idea_id)
                self.dispatcher.implement(idea_id)

    def _requeued(self, watched: dict[int, _Watched], key: int) -> None:
        with self.lock:
            if key in watched:
                watched[key] = replace(watched[key], queued_at=time.monotonic())
