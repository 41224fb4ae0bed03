"""The controller loop on the real store, with in-process runners standing in for training."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from autoresearch.adapters.catalog import CatalogProposer
from autoresearch.adapters.db import SqlStore
from autoresearch.domain.diffs import make_diff
from autoresearch.domain.model import (
    CampaignStatus,
    FailureLabel,
    IdeaOrigin,
    Trial,
    TrialResult,
    TrialStatus,
)
from autoresearch.domain.placement import GpuPool
from autoresearch.environment import Resources, load_environment
from autoresearch.errors import ConfigError
from autoresearch.services.campaign import STEERING_POLL_S, CampaignController, create_campaign
from autoresearch.services.proposer import Proposal
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


class Steered(ScoreRecipe):
    """Scores the recipe; in the first trial numbered `at` or more that runs (a trial whose patch failed
    never runs), does what a person would do through the API."""

    def __init__(self, at: int, action: Callable[[TrialJob], None], pause_s: float = 0.0) -> None:
        self.at, self.action, self.pause_s = at, action, pause_s
        self.steered = threading.Event()
        self.lock = threading.Lock()

    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        with self.lock:
            steer = job.number >= self.at and not self.steered.is_set()
            if steer:
                self.steered.set()
        if steer:
            self.action(job)
            time.sleep(self.pause_s)  # long enough for the controller to read the change
        time.sleep(0.05)  # trials take a moment, so a campaign does not end before it is steered
        return super().run(job, cancel)


@pytest.mark.parametrize("status", [CampaignStatus.STOPPED, CampaignStatus.CANCELLED])
def test_a_campaign_paused_or_cancelled_from_outside_stops_and_keeps_that_status(
    store: SqlStore, status: CampaignStatus
) -> None:
    runner = Steered(2, lambda job: store.set_campaign_status(job.campaign_id, status), pause_s=1.2)
    outcome = _controller(store, runner, trials=30).run()
    counted = store.list_trials(outcome.campaign.id, statuses=(TrialStatus.SUCCEEDED, TrialStatus.FAILED))
    assert outcome.campaign.status is status and outcome.stopped_by_user
    assert len(counted) < 20  # it stopped early, not at its budget of 30


def test_a_budget_raised_while_running_is_spent_and_a_seeded_idea_is_run(store: SqlStore) -> None:
    seeded = "Move y to -0.5 (a person's idea, which no technique in the catalog makes)"

    def steer(job: TrialJob) -> None:
        store.set_campaign_limits(job.campaign_id, trial_budget=6)
        baseline = store.get_trial_by_number(job.campaign_id, 0)
        diff = (
            "--- a/recipe.py\n+++ b/recipe.py\n@@ -1,3 +1,3 @@\n x = 0.0\n-y = 0.0\n+y = -0.5\n params = 10\n"
        )
        store.add_idea(
            job.campaign_id,
            hypothesis=seeded,
            origin=IdeaOrigin.USER,
            parent_trial_ids=(baseline.id,),
            diff=diff,
        )

    outcome = _controller(store, Steered(1, steer, pause_s=0.6), trials=3).run()
    trials = store.list_trials(outcome.campaign.id)
    by_idea = {store.get_idea(t.idea_id).hypothesis: t for t in trials}
    assert sum(t.status in (TrialStatus.SUCCEEDED, TrialStatus.FAILED) for t in trials) == 6
    assert by_idea[seeded].score == 10.25  # (0 - 3)^2 + (-0.5 + 1)^2 + 1: the seeded patch ran


class EndlessMutations:
    """A fresh value of x for any parent, every time: a proposer that never runs dry."""

    def propose(
        self, parent: Trial, code: Mapping[str, str], lineage: object, rng: random.Random, surface: object
    ) -> Proposal:
        old = code["recipe.py"]
        value = round(rng.uniform(-10, 10), 6)
        new = "\n".join(f"x = {value}" if line.startswith("x = ") else line for line in old.split("\n"))
        diff = make_diff({"recipe.py": old}, {"recipe.py": new})
        return Proposal(f"x = {value}", IdeaOrigin.MUTATION, diff, "hyperparameters", f"x={value}")


def test_a_vetoed_trial_is_never_a_parent_and_a_pinned_one_is_chosen_more(store: SqlStore) -> None:
    def children_of_trial_1(pin: bool) -> int:
        steered_at: list[datetime] = []

        def steer(job: TrialJob) -> None:
            store.set_trial_flags(store.get_trial_by_number(job.campaign_id, 0).id, vetoed=True)
            store.set_trial_flags(store.get_trial_by_number(job.campaign_id, 1).id, pinned=pin)
            steered_at.append(datetime.now(UTC))

        campaign = create_campaign(
            store, ENV, preset=None, strategy="evolve", trials=40, concurrency=2, seed=0, name=None, goal=""
        )
        runner = Steered(2, steer, pause_s=0.6)
        CampaignController(store, campaign, ENV, runner, EndlessMutations()).run()  # type: ignore[arg-type]
        trials = store.list_trials(campaign.id)
        read_by = steered_at[0] + timedelta(
            seconds=STEERING_POLL_S + 0.2
        )  # the controller has read the flags
        later = [t for t in trials if t.created_at is not None and t.created_at > read_by]
        assert len(later) >= 20 and all(
            t.parent_id != trials[0].id for t in later
        )  # never the vetoed baseline
        return sum(t.parent_id == trials[1].id for t in later)

    pinned, unpinned = children_of_trial_1(pin=True), children_of_trial_1(pin=False)
    assert pinned >= 10 and pinned > 2 * unpinned  # about half the later trials build on the pinned one


class OneIdeaPerParent:
    """x + 1, once for each parent: a proposer with nothing for a parent it has already built on."""

    def __init__(self) -> None:
        self.used: set[int] = set()

    def propose(
        self, parent: Trial, code: Mapping[str, str], lineage: object, rng: random.Random, surface: object
    ) -> Proposal | None:
        if parent.id in self.used:
            return None
        self.used.add(parent.id)
        old = code["recipe.py"]
        first, rest = old.split("\n", 1)  # "x = 0.0", then y and params
        x = float(first.removeprefix("x = ")) + 1
        new = f"x = {x}\n{rest}"
        return Proposal(
            f"x = {x}",
            IdeaOrigin.MUTATION,
            make_diff({"recipe.py": old}, {"recipe.py": new}),
            "hyperparameters",
            f"x={x}",
        )


def test_a_proposer_dry_while_a_trial_runs_is_asked_again_once_that_trial_is_a_parent(
    store: SqlStore,
) -> None:
    campaign = create_campaign(
        store, ENV, preset=None, strategy="evolve", trials=4, concurrency=2, seed=0, name=None, goal=""
    )
    outcome = CampaignController(store, campaign, ENV, ScoreRecipe(), OneIdeaPerParent()).run()  # type: ignore[arg-type]
    trials = store.list_trials(campaign.id)
    assert [t.score for t in trials] == [11.0, 6.0, 3.0, 2.0]  # x = 0, 1, 2, 3: each built on the last
    assert not outcome.exhausted


class XLines:
    """Writes each x line in turn, each under its own name: two spellings of one value are two ideas with
    one program."""

    def __init__(self, *lines: tuple[str, str]) -> None:
        self.lines = list(lines)

    def propose(
        self, parent: Trial, code: Mapping[str, str], lineage: object, rng: random.Random, surface: object
    ) -> Proposal | None:
        if not self.lines:
            return None
        key, x_line = self.lines.pop(0)
        old = code["recipe.py"]
        new = "\n".join(x_line if line.startswith("x = ") else line for line in old.split("\n"))
        diff = make_diff({"recipe.py": old}, {"recipe.py": new})
        return Proposal(f"{key}: {x_line}", IdeaOrigin.MUTATION, diff, "hyperparameters", key)


class RecordsCode(ScoreRecipe):
    def __init__(self) -> None:
        self.ran: list[str] = []
        self.lock = threading.Lock()

    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        with self.lock:
            self.ran.append(job.code["recipe.py"])
        time.sleep(0.05)
        return super().run(job, cancel)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_an_idea_whose_patch_makes_code_already_run_is_not_run_again(
    store: SqlStore, concurrency: int
) -> None:
    campaign = create_campaign(
        store,
        ENV,
        preset=None,
        strategy="best-of-n",
        trials=4,
        concurrency=concurrency,
        seed=0,
        name=None,
        goal="",
    )
    runner = RecordsCode()
    proposer = XLines(
        ("x_to_two", "x = 2.0"), ("two_spelled_otherwise", "x = 2e0  # the same"), ("x_to_three", "x = 3.0")
    )
    CampaignController(store, campaign, ENV, runner, proposer).run()  # type: ignore[arg-type]
    trials = store.list_trials(campaign.id)
    assert [t.status for t in trials] == [
        TrialStatus.SUCCEEDED,
        TrialStatus.SUCCEEDED,
        TrialStatus.FAILED,
        TrialStatus.SUCCEEDED,
    ]
    assert Counter(runner.ran).most_common(1)[0][1] == 1 and len(runner.ran) == 3  # each code ran once
    same = trials[2]
    assert same.label is FailureLabel.SAME_CODE and same.duration_s is None
    assert same.code_diff != trials[1].code_diff
    assert same.reason.startswith("the same program as trial 1 at the same seed, which ")
