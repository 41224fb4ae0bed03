"""Each task is a few lines over a service."""

from __future__ import annotations

import os
import socket
from functools import cache

from autoresearch.adapters.artifacts import open_artifacts
from autoresearch.adapters.db import SqlStore, open_store
from autoresearch.adapters.sandbox import make_sandbox
from autoresearch.environment import Environment, find_environment
from autoresearch.services.runner import TrialRunner, prepare_data
from autoresearch.services.worker import execute_trial, requeue_lost
from autoresearch.settings import settings
from workers.app import app


@cache
def _store() -> SqlStore:
    return open_store(settings().resolved_database_url)


@cache
def _environment(name: str) -> Environment:
    return find_environment(name, settings().environment_search_path)


# By environment and preset; a worker runs one task at a time.
_runners: dict[tuple[str, str], TrialRunner] = {}


def _runner(env: Environment, preset: str) -> TrialRunner:
    if (env.name, preset) not in _runners:
        sandbox, _ = make_sandbox(settings().sandbox)
        data = prepare_data(env, settings())
        _runners[env.name, preset] = TrialRunner(
            env, preset, settings(), sandbox, data, open_artifacts(settings())
        )
    return _runners[env.name, preset]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@app.task(name="autoresearch.run_trial")
def run_trial(trial_id: int) -> None:
    """Run one pending trial and record its result (nothing, if it is not pending any more)."""
    execute_trial(
        _store(),
        trial_id,
        worker=worker_name(),
        lease_s=settings().lease_s,
        environment_named=_environment,
        runner_for=_runner,
    )


@app.task(name="autoresearch.requeue_lost")
def requeue_lost_trials() -> None:
    """Retry the trials whose worker stopped renewing its lease (run it every few seconds, e.g. by beat)."""
    requeue_lost(_store(), lambda trial_id: run_trial.apply_async(args=[trial_id], queue=queue_of(trial_id)))


def queue_of(trial_id: int) -> str:
    """The queue a trial goes to: gpu when its preset asks for any GPU, else cpu."""
    campaign = _store().get_campaign(_store().get_trial(trial_id).campaign_id)
    env = _environment(campaign.environment)
    _, preset = env.preset(campaign.preset)
    return "gpu" if env.resources(preset).gpu > 0 else "cpu"
