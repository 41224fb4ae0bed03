"""The worker's side: implement a queued idea into its trial; claim a trial under a lease, keep the lease
alive, run it, record the result.

A worker may die at any point: the lease then expires and the trial becomes worker_lost; a worker
that comes back late with a result finds its fencing token stale and records nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from autoresearch.domain.diffs import apply_diff
from autoresearch.domain.model import Campaign, CampaignStatus, Trial, TrialStatus
from autoresearch.environment import Environment
from autoresearch.errors import Conflict
from autoresearch.services.execution import implement_idea
from autoresearch.services.implementer import Implementer
from autoresearch.services.proposer import proposal_of
from autoresearch.services.runner import TrialJob, TrialRunner
from autoresearch.services.store import Store

RunnerFor = Callable[[Environment, str], TrialRunner]  # (environment, preset) -> its runner
EnvironmentNamed = Callable[[str], Environment]
ImplementerFor = Callable[[Campaign, Environment], Implementer]


def implement_queued(
    store: Store, idea_id: int, *, environment_named: EnvironmentNamed, implementer_for: ImplementerFor
) -> Trial | None:
    """Implement a queued idea into its trial; None when it already has one (a redelivered task, or two
    implementers at once: the database keeps the first) or its campaign is not running."""
    if store.first_trial_of(idea_id) is not None:
        return None
    idea = store.get_idea(idea_id)
    campaign = store.get_campaign(idea.campaign_id)
    if campaign.status is not CampaignStatus.RUNNING:
        return None  # stopped while the idea waited: no LLM spend now; a resume queues it again
    env = environment_named(campaign.environment)
    baseline = env.read_editable()
    parent = store.get_trial(idea.parent_trial_ids[0])
    parent_code = apply_diff(baseline, parent.code_diff) if parent.code_diff else baseline
    implementer = implementer_for(campaign, env)
    try:
        return implement_idea(
            store, implementer, idea, proposal_of(idea), parent, parent_code, baseline, campaign.train_seed
        )
    except Conflict:
        return None


def execute_trial(
    store: Store,
    trial_id: int,
    *,
    worker: str,
    lease_s: float,
    environment_named: EnvironmentNamed,
    runner_for: RunnerFor,
    devices: tuple[str, ...] | None = None,
) -> Trial | None:
    """Run a pending trial to its result; None when it was not this worker's to run (already claimed,
    finished, or its lease was lost on the way). Safe to call twice for one trial."""
    trial = store.get_trial(trial_id)
    if trial.status is not TrialStatus.PENDING:
        return None  # a redelivered message for a trial someone else took
    campaign = store.get_campaign(trial.campaign_id)
    if campaign.status is not CampaignStatus.RUNNING:
        return None  # stopped while the trial waited in the queue: it stays pending until a resume
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
        job = TrialJob.of(trial, code, devices)
        result = runner_for(env, campaign.preset).run(job, lost)
    finally:
        done.set()
        beating.join()
    return store.finish_trial(trial.id, result, token=lease.token)
