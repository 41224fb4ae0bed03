"""Confirmation: the search's best programs and the baseline re-run on fresh seeds, and the verdict
read from those runs alone."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

import pytest

from autoresearch.adapters.catalog import CatalogProposer
from autoresearch.adapters.db import SqlStore
from autoresearch.domain.confirmation import bootstrap_difference, fresh_seeds, race_seeds
from autoresearch.domain.model import Direction, FailureLabel, Trial, TrialResult, TrialRole, TrialStatus
from autoresearch.environment import load_environment
from autoresearch.errors import ConfigError
from autoresearch.services import reports
from autoresearch.services.campaign import CampaignController, CampaignOutcome, create_campaign
from autoresearch.services.reproduce import Reproduction, Rerun
from autoresearch.services.runner import TrialJob
from autoresearch.testing import ENVIRONMENTS_DIR

ENV = load_environment(ENVIRONMENTS_DIR / "tiny")


class NoisyRecipe:
    """The tiny recipe's score plus seed noise; confirmation runs also get a test score, `shift` away.
    `signal` scales how much the recipe matters: 0 leaves only the noise."""

    def __init__(self, signal: float = 1.0, noise: float = 0.05, shift: float = 0.5) -> None:
        self.signal, self.noise, self.shift = signal, noise, shift
        self.jobs: list[TrialJob] = []
        self.lock = threading.Lock()

    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        with self.lock:
            self.jobs.append(job)
        values = dict(line.split(" = ") for line in job.code["recipe.py"].splitlines())
        x, y = float(values["x"]), float(values["y"])
        clean = self.signal * ((x - 3) ** 2 + (y + 1) ** 2) + 1
        score = clean + random.Random(f"{job.seed}").gauss(0, self.noise)
        test = score + self.shift if job.certify else None
        # The runner's clock: a compute budget counts it.
        return TrialResult.scored(score, duration_s=0.001, test_score=test, metrics={"train_seconds": 10.0})


def _run(
    store: SqlStore,
    runner: object,
    *,
    trials: int,
    top: int = 2,
    seeds: int = 3,
    train_seed: int = 7,
    race: int = 0,
    seconds_budget: float | None = None,
) -> CampaignOutcome:
    campaign = create_campaign(
        store,
        ENV,
        preset=None,
        strategy="evolve",
        trials=trials,
        concurrency=2,
        seed=0,
        name=None,
        goal="",
        train_seed=train_seed,
        confirm_top=top,
        confirm_seeds=seeds,
        race=race,
        seconds_budget=seconds_budget,
    )
    controller = CampaignController(store, campaign, ENV, runner, CatalogProposer(ENV))  # type: ignore[arg-type]
    return controller.run()


def test_the_paired_interval_excludes_zero_only_on_a_consistent_gain() -> None:
    baseline = {1: 2.0, 2: 2.1, 3: 1.9}
    better = {seed: score - 0.3 for seed, score in baseline.items()}
    difference = bootstrap_difference(better, baseline)
    assert difference is not None and difference.paired
    assert difference.mean == pytest.approx(-0.3)
    assert difference.beyond_noise(Direction.MINIMIZE)
    assert not difference.beyond_noise(Direction.MAXIMIZE)  # lower is worse when higher is better
    mixed = {1: 1.7, 2: 2.3, 3: 1.8}  # better on two seeds, worse on one
    difference = bootstrap_difference(mixed, baseline)
    assert difference is not None and difference.low < 0 < difference.high
    assert not difference.beyond_noise(Direction.MINIMIZE)


def test_unpaired_scores_are_resampled_apart_and_nothing_compares_with_nothing() -> None:
    difference = bootstrap_difference({4: 1.0, 5: 1.1}, {1: 2.0, 2: 2.2, 3: 2.1})
    assert difference is not None and not difference.paired
    assert difference.high < 0
    assert bootstrap_difference({}, {1: 1.0}) is None


def test_a_real_gain_is_confirmed_on_fresh_seeds_and_reported_on_the_test_split(store: SqlStore) -> None:
    runner = NoisyRecipe()
    outcome = _run(store, runner, trials=8, top=2, seeds=3)
    trials = store.list_trials(outcome.campaign.id)
    search = [t for t in trials if t.role is TrialRole.SEARCH]
    confirm = [t for t in trials if t.role is TrialRole.CONFIRM]
    assert sum(t.status in (TrialStatus.SUCCEEDED, TrialStatus.FAILED) for t in search) == 8  # the budget
    assert sum(store.count_trials(outcome.campaign.id, budget_only=True).values()) == len(search)
    assert {t.seed for t in search} == {7}
    assert len(confirm) == 3 * 3  # the baseline and the best 2, on 3 fresh seeds each
    assert {t.seed for t in confirm} == set(fresh_seeds(7, 3)) and 7 not in fresh_seeds(7, 3)
    assert all(t.confirms is not None and t.parent_id == t.confirms for t in confirm)
    assert all(job.certify == (job.seed != 7) for job in runner.jobs)  # only confirmations see the test split
    assert outcome.best is not None and outcome.best.role is TrialRole.SEARCH
    verdict = outcome.confirmed
    assert verdict is not None and verdict.split == "test" and verdict.improved
    assert verdict.winner is not None and verdict.winner.trial.id in {t.confirms for t in confirm}
    ideas = {i.id: i for i in store.list_ideas(outcome.campaign.id)}
    report = reports.confirmation_report(trials, ideas, Direction.MINIMIZE)
    assert report is not None and report["improved"] and report["summary"].startswith("improved beyond noise")
    winner = next(c for c in report["candidates"] if c["trial"] == report["winner"])
    # The test scores are the runner's, shifted: the report reads the test split, not the search's.
    assert winner["test"]["mean"] == pytest.approx(winner["val"]["mean"] + 0.5)


def test_a_search_that_only_found_noise_says_so(store: SqlStore) -> None:
    outcome = _run(store, NoisyRecipe(signal=0.0, noise=0.2), trials=8, top=3, seeds=3)
    verdict = outcome.confirmed
    assert verdict is not None and not verdict.improved
    ideas = {i.id: i for i in store.list_ideas(outcome.campaign.id)}
    report = reports.confirmation_report(store.list_trials(outcome.campaign.id), ideas, Direction.MINIMIZE)
    assert report is not None and report["summary"].startswith("nothing beyond noise")


class LosesConfirmations(NoisyRecipe):
    """The first confirmation run's worker dies: it is run again, still a confirmation."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = False

    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        if job.certify and not self.lost:
            self.lost = True
            return TrialResult.failed(FailureLabel.WORKER_LOST, "the worker died")
        return super().run(job, cancel)


def test_a_lost_confirmation_is_retried_as_a_confirmation(store: SqlStore) -> None:
    outcome = _run(store, LosesConfirmations(), trials=4, top=1, seeds=2)
    confirm = [t for t in store.list_trials(outcome.campaign.id) if t.role is TrialRole.CONFIRM]
    retried = [t for t in confirm if t.retry_of is not None]
    assert len(retried) == 1 and retried[0].confirms is not None
    assert sum(t.is_scored for t in confirm) == 2 * 2


def test_confirmation_settings_are_checked(store: SqlStore) -> None:
    for top, seeds in ((3, 0), (0, 3), (2, 1), (-1, 3)):
        with pytest.raises(ConfigError, match="confirm"):
            _run(store, NoisyRecipe(), trials=2, top=top, seeds=seeds)


def test_a_child_that_leads_by_less_than_the_noise_is_re_run_before_it_may_be_a_parent(
    store: SqlStore,
) -> None:
    outcome = _run(store, NoisyRecipe(signal=0.02, noise=0.2), trials=12, top=1, seeds=3, race=1)
    trials = store.list_trials(outcome.campaign.id)
    races = [t for t in trials if t.role is TrialRole.RACE]
    assert races, "no child was raced, though every lead was inside the noise"
    assert {t.seed for t in races} == set(race_seeds(7, 1))
    assert all(t.test_score is None for t in races)  # a race steers the search: it never sees the test split
    counted = [
        t
        for t in trials
        if t.role is not TrialRole.CONFIRM and t.status in (TrialStatus.SUCCEEDED, TrialStatus.FAILED)
    ]
    assert len(counted) == 12  # races spend the search's budget; confirmation comes on top
    by_id = {t.id: t for t in trials}
    for child in (t for t in trials if t.role is TrialRole.SEARCH and t.parent_id is not None):
        for race in (r for r in races if r.confirms == child.parent_id):
            assert race.finished_at is not None and child.created_at is not None
            assert race.finished_at <= child.created_at, (
                f"trial {child.number} was built on trial {by_id[child.parent_id].number} before its re-run ended"
            )


def test_a_child_clearly_beyond_the_noise_is_not_re_run(store: SqlStore) -> None:
    outcome = _run(store, NoisyRecipe(signal=1.0, noise=0.0001), trials=8, top=1, seeds=3, race=1)
    trials = store.list_trials(outcome.campaign.id)
    assert not [t for t in trials if t.role is TrialRole.RACE]
    assert outcome.best is not None and outcome.baseline is not None
    assert outcome.best.score is not None and outcome.baseline.score is not None
    assert outcome.best.score < outcome.baseline.score


def test_a_budget_in_training_seconds_stops_the_search_once_spent(store: SqlStore) -> None:
    outcome = _run(store, NoisyRecipe(), trials=50, top=1, seeds=2, seconds_budget=35.0)
    trials = store.list_trials(outcome.campaign.id)
    search = [t for t in trials if t.role is not TrialRole.CONFIRM]
    # 10 s each: none starts once 4 have trained (40 s); the 2 in flight then may still finish.
    assert 4 <= len(search) <= 4 + outcome.campaign.concurrency
    assert outcome.confirmed is not None  # it still confirms what it found
    with pytest.raises(ConfigError, match="budget-seconds"):
        _run(store, NoisyRecipe(), trials=2, seconds_budget=0.0)


def _reproduction(recorded: float, reruns: list[float | None], campaign_noise: float | None) -> Reproduction:
    trial = replace(TRIAL, score=recorded)
    return Reproduction(trial, tuple(Rerun(seed, score) for seed, score in enumerate(reruns)), campaign_noise)


TRIAL = Trial(id=1, campaign_id=1, number=3, idea_id=1, parent_id=None, status=TrialStatus.SUCCEEDED, seed=0)


def test_a_re_run_reproduces_its_trial_within_the_noise_floor_and_only_then() -> None:
    assert _reproduction(2.0, [2.0], None).reproduced is True  # the same score needs no floor
    assert _reproduction(2.0, [2.01], None).reproduced is None  # nothing to judge a difference by
    assert _reproduction(2.0, [2.01], 0.02).reproduced is True  # the campaign's baseline noise
    assert _reproduction(2.0, [2.05], 0.02).reproduced is False
    within = _reproduction(2.0, [2.05, 2.1, 2.0], None)  # the program's own spread over seeds: 0.05
    assert within.program_noise == pytest.approx(0.05) and within.reproduced is True
    assert _reproduction(2.0, [None, 2.0], 0.1).reproduced is False  # no score at its own seed
