"""The worker's side of a trial: claim it under a lease, keep the lease alive, run it, record the result.

A worker may die at any point: the lease then expires and the trial becomes worker_lost; a worker
that comes back late with a result finds its fencing token stale and records nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from autoresearch.domain.diffs import apply_diff
from autoresearch.domain.model import Trial, TrialStatus
from autoresearch.environment import Environment
from autoresearch.services.runner import TrialJob, TrialRunner
from autoresearch.services.store import Store

RunnerFor = Callable[[Environment, str], TrialRunner]  # (environment, preset) -> its runner
EnvironmentNamed = Callable[[str], Environment]


def execute_trial(
    store: Store,
    trial_id: int,
    *,
    worker: str,
    lease_s: float,
    environment_named: EnvironmentNamed,
    runner_for: RunnerFor,
) -> Trial | None:
    """Run a pending trial to its result; None when it was not this worker's to run (already claimed,
    finished, or its lease was lost on the way). Safe to call twice for one trial."""
    trial = store.get_trial(trial_id)
    if trial.status is not TrialStatus.PENDING:
        return None  # a redelivered message for a trial someone else took
    campaign = store.get_campaign(trial.campaign_id)
    env = environment_named(campaign.environment)
    baseline = env.read_editable()
    code = apply_diff(baseline, trial.code_diff) if trial.code_diff else baseline
    lease = store.claim_trial(trial.id, worker=worker, lease_s=lease_s)
    if lease is None:
        return None
    lost = threading.Event()  # set when the lease cannot be renewed: the trial is someone else's now
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(lease_s / 3):
            if not store.renew_lease(trial.id, lease.token, lease_s):
                lost.set()
                return

    beating = threading.Thread(target=heartbeat, name=f"lease-{trial.id}", daemon=True)
    beating.start()
    try:
        job = TrialJob(campaign.id, trial.id, trial.number, trial.seed, code)
        result = runner_for(env, campaign.preset).run(job, lost)
    finally:
        done.set()
        beating.join()
    return store.finish_trial(trial.id, result, token=lease.token)


def requeue_lost(
    store: Store, enqueue: Callable[[int], None], *, max_tries: int = 3, now: datetime | None = None
) -> list[Trial]:
    """Expire the leases that ran out and queue a retry (a new trial) for each trial lost that way,
    unless its idea has already been lost `max_tries` times: then the worker_lost label stays."""
    retries = []
    for lost in store.expire_leases(now):
        tries, earlier = 1, lost.retry_of
        while earlier is not None:
            tries, earlier = tries + 1, store.get_trial(earlier).retry_of
        if tries >= max_tries:
            continue
        retry = store.add_trial(
            lost.campaign_id,
            idea_id=lost.idea_id,
            parent_id=lost.parent_id,
            seed=lost.seed,
            code_diff=lost.code_diff,
            retry_of=lost.id,
        )
        enqueue(retry.id)
        retries.append(retry)
    return retries
