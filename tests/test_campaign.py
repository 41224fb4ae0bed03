"""The controller loop on the real store, with in-process runners standing in for training."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace

import pytest

from autoresearch.adapters.catalog import CatalogProposer
from autoresearch.adapters.db import SqlStore
from autoresearch.domain.model import FailureLabel, IdeaOrigin, TrialResult, TrialStatus
from autoresearch.domain.placement import GpuPool
from autoresearch.environment import Resources, load_environment
from autoresearch.errors import ConfigError
from autoresearch.services.campaign import CampaignController, create_campaign
from autoresearch.services.runner import TrialJob
from autoresearch.testing import ENVIRONMENTS_DIR

ENV = load_environment(ENVIRONMENTS_DIR / "tiny")


class ScoreRecipe:
    """Scores the tiny recipe as its evaluator does, without starting a process."""

    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        values = dict(line.split(" = ") for line in job.code["recipe.py"].splitlines())
        x, y = float(values["x"]), float(values["y"])
        return TrialResult.scored((x - 3) ** 2 + (y + 1) ** 2 + 1, duration_s=0.001)


class Broken:
    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        raise KeyError("outdir")


def _controller(store: SqlStore, runner: object, trials: int, strategy: str = "evolve") -> CampaignController:
    campaign = create_campaign(
        store, ENV, preset=None, strategy=strategy, trials=trials, concurrency=2, seed=0, name=None, goal=""
    )
    return CampaignController(store, campaign, ENV, runner, CatalogProposer(ENV))  # type: ignore[arg-type]


def test_evolve_stacks_edits_on_improving_parents_and_spends_exactly_the_budget(store: SqlStore) -> None:
    outcome = _controller(store, ScoreRecipe(), trials=12).run()
    trials = store.list_trials(outcome.campaign.id)
    assert sum(t.status in (TrialStatus.SUCCEEDED, TrialStatus.FAILED) for t in trials) == 12
    assert outcome.best is not None and outcome.baseline is not None
    assert outcome.best.score is not None and outcome.baseline.score == 11.0
    assert outcome.best.score < outcome.baseline.score
    depth = max(len(store_path) for store_path in (_path(store, t.id) for t in trials))
    assert depth >= 3, "no child was ever built on an improved child"
    assert str(outcome.campaign.status) == "finished"


def _path(store: SqlStore, trial_id: int) -> list[int]:
    path = [trial_id]
    while (parent := store.get_trial(path[-1]).parent_id) is not None:
        path.append(parent)
    return path


def test_best_of_n_builds_every_child_on_the_baseline(store: SqlStore) -> None:
    outcome = _controller(store, ScoreRecipe(), trials=6, strategy="best-of-n").run()
    trials = store.list_trials(outcome.campaign.id)
    baseline = trials[0]
    assert all(t.parent_id == baseline.id for t in trials[1:])
    ideas = {i.id: i for i in store.list_ideas(outcome.campaign.id)}
    assert ideas[baseline.idea_id].origin is IdeaOrigin.BASELINE


def test_a_runner_that_raises_stops_the_campaign_instead_of_burning_ideas(store: SqlStore) -> None:
    outcome = _controller(store, Broken(), trials=10).run()
    trials = store.list_trials(outcome.campaign.id)
    assert len(trials) <= 2  # the trials already in flight, nothing more
    assert Counter(t.label for t in trials) == {FailureLabel.WORKER_LOST: len(trials)}
    assert "KeyError" in trials[0].reason


class CountsGpuSharers:
    """Records which GPUs each trial was given and how many ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.devices: list[tuple[str, ...] | None] = []

    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.devices.append(job.devices)
        time.sleep(0.3)
        with self.lock:
            self.running -= 1
        return ScoreRecipe().run(job)


def test_trials_needing_a_quarter_gpu_run_four_at_a_time_on_a_four_slot_gpu(store: SqlStore) -> None:
    campaign = create_campaign(
        store,
        ENV,
        preset="quarter_gpu",
        strategy="evolve",
        trials=10,
        concurrency=8,
        seed=0,
        name=None,
        goal="",
    )
    runner = CountsGpuSharers()
    gpus = GpuPool(["0"], slots_per_gpu=4)
    controller = CampaignController(store, campaign, ENV, runner, CatalogProposer(ENV), gpus=gpus)  # type: ignore[arg-type]
    controller.run()
    assert runner.most == 4  # concurrency 8 asked for more: the GPU had room for four
    assert set(runner.devices) == {("0",)}
    assert all(free == 4 for free in gpus.free.values())


def test_a_preset_needing_more_gpus_than_the_machine_has_is_refused(store: SqlStore) -> None:
    campaign = create_campaign(
        store,
        ENV,
        preset="quarter_gpu",
        strategy="evolve",
        trials=2,
        concurrency=1,
        seed=0,
        name=None,
        goal="",
    )
    wide = ENV.spec.presets["quarter_gpu"].model_copy(update={"resources": Resources(cpu_threads=1, gpu=2.0)})
    env = replace(
        ENV, spec=ENV.spec.model_copy(update={"presets": {**ENV.spec.presets, "quarter_gpu": wide}})
    )
    with pytest.raises(ConfigError, match="needs 2 GPUs"):
        CampaignController(store, campaign, env, ScoreRecipe(), CatalogProposer(env), gpus=GpuPool(["0"]))  # type: ignore[arg-type]
