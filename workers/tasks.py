"""Each task is a few lines over a service; what a worker process holds (its store, runners, agents and
GPUs) is built once and kept."""

from __future__ import annotations

import logging
import os
import socket
import threading
from contextlib import ExitStack
from functools import cache

from autoresearch.adapters.artifacts import open_artifacts
from autoresearch.adapters.db import SqlStore, open_store
from autoresearch.adapters.sandbox import Sandbox, make_sandbox
from autoresearch.agents.build import open_agents, preflight_preset
from autoresearch.domain.model import Campaign
from autoresearch.domain.placement import GpuPool
from autoresearch.environment import Environment, find_environment
from autoresearch.services.implementer import DiffImplementer, Implementer
from autoresearch.services.proposer import ProposerStopped
from autoresearch.services.runner import TrialRunner, prepare_data
from autoresearch.services.worker import execute_trial, implement_queued
from autoresearch.settings import settings
from workers.app import app

log = logging.getLogger(__name__)

GPUS: GpuPool | None = None  # set by `autoresearch worker --gpus` before the worker starts
_held = ExitStack()  # agents (and their LLM clients) kept for the worker's life
_lock = threading.RLock()


@cache
def _store() -> SqlStore:
    return open_store(settings().resolved_database_url)


@cache
def _environment(name: str) -> Environment:
    return find_environment(name, settings().environment_search_path)


@cache
def sandbox() -> Sandbox:
    """This worker's sandbox, made once: bubblewrap, or a ConfigError (none only when set on purpose)."""
    return make_sandbox(settings().sandbox, settings().python)


# Built once per (environment, preset) and per campaign; with --gpus, tasks run on several threads.
_runners: dict[tuple[str, str], TrialRunner] = {}
_implementers: dict[int, Implementer] = {}


def _runner(env: Environment, preset: str) -> TrialRunner:
    with _lock:
        if (env.name, preset) not in _runners:
            data = prepare_data(env, settings())
            _runners[env.name, preset] = TrialRunner(
                env, preset, settings(), sandbox(), data, open_artifacts(settings())
            )
        return _runners[env.name, preset]


def _implementer(campaign: Campaign, env: Environment) -> Implementer:
    """The campaign's LLM implementer (with its preflight), or the catalog's diff applier."""
    if campaign.id not in _implementers:
        smoke = preflight_preset(env, campaign.preset)
        smoke_runner = _runner(env, smoke) if smoke else None
        with _lock:
            agents = _held.enter_context(
                open_agents(_store(), campaign, env, settings(), smoke_runner, threading.Event())
            )
            _implementers[campaign.id] = (
                agents.implementer if agents is not None else DiffImplementer(env, env.read_editable())
            )
    return _implementers[campaign.id]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@app.task(name="autoresearch.implement_idea")
def implement_idea(idea_id: int) -> None:
    """Implement a queued idea into its trial (nothing, if it has one already)."""
    try:
        implement_queued(_store(), idea_id, environment_named=_environment, implementer_for=_implementer)
    except ProposerStopped as exc:  # the controller sees the idea unimplemented and stops asking
        log.warning("idea %s not implemented: %s", idea_id, exc)


@app.task(name="autoresearch.run_trial")
def run_trial(trial_id: int) -> None:
    """Run one pending trial and record its result (nothing, if it is not pending any more). With
    --gpus, first wait for room on this worker's GPUs."""
    need = gpu_need(trial_id)
    if GPUS is not None and not GPUS.fits_ever(need):
        # Dropped here; the campaign's controller queues it again later, for a larger worker to take.
        log.error("trial %s needs %g GPUs; this worker has %d", trial_id, need, len(GPUS.free))
        return
    placement = GPUS.place(need) if GPUS is not None and need > 0 else None
    try:
        execute_trial(
            _store(),
            trial_id,
            worker=worker_name(),
            lease_s=settings().lease_s,
            environment_named=_environment,
            runner_for=_runner,
            devices=placement.devices if placement is not None else None,
        )
    finally:
        if GPUS is not None and placement is not None:
            GPUS.release(placement)


def gpu_need(trial_id: int) -> float:
    store = _store()
    campaign = store.get_campaign(store.get_trial(trial_id).campaign_id)
    env = _environment(campaign.environment)
    _, preset = env.preset(campaign.preset)
    return env.resources(preset).gpu
