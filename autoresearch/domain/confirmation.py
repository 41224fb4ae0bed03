"""Confirmed results: the search's best programs and the baseline re-run on fresh seeds, and what
those runs say once the search's own luck is taken out.

A search picks its best trial by one seed's score on the split it searched on, so that score is
optimistic by construction. Confirmation runs the top programs and the baseline again, each on the
same fresh seeds; the winner is the best by its mean on the search's split over those seeds, and its
result is reported on the environment's test split (which the search never saw) when there is one.
"Improved" needs the bootstrap interval of its difference to the baseline to exclude zero.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from autoresearch.domain.model import Direction, Trial, TrialRole, TrialStatus

RESAMPLES = 10_000
CONFIDENCE = 0.95
BEYOND_NOISE = 2.0  # during the search, a gain counts when it exceeds this many of the baseline's seed sds


def seed_noise(scores: Iterable[float]) -> float | None:
    """The sample sd of one program's scores over seeds; None below two scores."""
    scores = list(scores)
    return statistics.stdev(scores) if len(scores) > 1 else None


def clearly_better(a: float, b: float, noise: float | None, direction: Direction) -> bool:
    """`a` beats `b` by more than BEYOND_NOISE seed sds; never while the noise is unknown."""
    return noise is not None and direction.better(a, b) and abs(a - b) > BEYOND_NOISE * noise


def fresh_seeds(train_seed: int, count: int) -> list[int]:
    """The seeds confirmation trains with: never the search's own, nor a race's."""
    return [train_seed + 1 + i for i in range(count)]


def race_seeds(train_seed: int, count: int) -> list[int]:
    """The seeds a promising child is re-run on during the search: never confirmation's."""
    return [train_seed + 1000 + i for i in range(count)]


@dataclass(frozen=True)
class Estimate:
    """Scores of one program over seeds."""

    scores: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def sd(self) -> float | None:
        return seed_noise(self.scores)


@dataclass(frozen=True)
class Difference:
    """Candidate minus baseline, with a bootstrap interval; paired when both ran on the same seeds."""

    mean: float
    low: float
    high: float
    paired: bool

    def beyond_noise(self, direction: Direction) -> bool:
        """The whole interval lies on the better side of zero."""
        return self.high < 0 if direction is Direction.MINIMIZE else self.low > 0


def bootstrap_difference(
    candidate: Mapping[int, float], baseline: Mapping[int, float], *, seed: int = 0
) -> Difference | None:
    """The percentile bootstrap interval of mean(candidate) - mean(baseline). Scores are keyed by seed:
    with the same seeds on both sides the per-seed differences are resampled (common seeds cancel
    the noise they share), else each side is resampled on its own. None without a score on each side."""
    if not candidate or not baseline:
        return None
    rng = random.Random(seed)
    if candidate.keys() == baseline.keys():
        diffs = [candidate[s] - baseline[s] for s in sorted(candidate)]
        means = [statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(RESAMPLES)]
        centre, paired = statistics.fmean(diffs), True
    else:
        a, b = list(candidate.values()), list(baseline.values())
        means = [
            statistics.fmean(rng.choices(a, k=len(a))) - statistics.fmean(rng.choices(b, k=len(b)))
            for _ in range(RESAMPLES)
        ]
        centre, paired = statistics.fmean(a) - statistics.fmean(b), False
    means.sort()
    tail = (1 - CONFIDENCE) / 2
    low = means[math.floor(tail * (RESAMPLES - 1))]
    high = means[math.ceil((1 - tail) * (RESAMPLES - 1))]
    return Difference(mean=centre, low=low, high=high, paired=paired)


@dataclass(frozen=True)
class Confirmed:
    """One program as confirmation measured it."""

    trial: Trial  # the search trial it re-ran (for the baseline: the baseline's search run)
    runs: tuple[Trial, ...]  # its confirmation trials
    val: Mapping[int, float]  # seed -> score on the search's split
    test: Mapping[int, float]  # seed -> score on the test split (empty without one)
    failed: int  # confirmation runs that ended without a score

    def measured(self, key: str) -> float | None:
        """The mean of a metric over its scored runs (what the runner or evaluator measured), if any has it."""
        values = [t.metrics[key] for t in self.runs if t.is_scored and key in t.metrics]
        return statistics.fmean(values) if values else None

    def on(self, split: str) -> Mapping[int, float]:
        return self.test if split == "test" else self.val


@dataclass(frozen=True)
class Verdict:
    split: str  # where the result is reported: "test", or "val" when the environment has no test split
    baseline: Confirmed
    candidates: tuple[Confirmed, ...]  # best first, by their mean on the search's split
    differences: Mapping[int, Difference | None]  # by the candidate's trial id, on `split`
    direction: Direction

    @property
    def winner(self) -> Confirmed | None:
        return self.candidates[0] if self.candidates and self.candidates[0].val else None

    @property
    def improved(self) -> bool:
        winner = self.winner
        if winner is None:
            return False
        difference = self.differences.get(winner.trial.id)
        return difference is not None and difference.beyond_noise(self.direction)


def confirm_candidates(
    ranked: Iterable[Trial], baseline: Trial, top: int, program_of: Callable[[Trial], str]
) -> list[Trial]:
    """The first `top` of the search's ranking (best first) whose programs differ from each other and from
    the baseline's; `program_of` names a trial's program."""
    seen = {program_of(baseline)}
    chosen: list[Trial] = []
    for trial in ranked:
        program = program_of(trial)
        if program in seen:
            continue
        seen.add(program)
        chosen.append(trial)
        if len(chosen) == top:
            break
    return chosen


def verdict(trials: Sequence[Trial], baseline: Trial, direction: Direction) -> Verdict | None:
    """What a campaign's confirmation runs say, or None when it has none. Confirmations are grouped by
    the idea whose program they re-run; the candidates are ranked by their mean on the search's split
    (the test split never chooses), and each is compared with the baseline on the test split when the
    runs were scored on one, else on the search's split."""
    runs: dict[int, list[Trial]] = {}
    for trial in trials:
        if trial.role is TrialRole.CONFIRM and trial.confirms is not None:
            runs.setdefault(trial.idea_id, []).append(trial)
    if not runs:
        return None
    by_id = {t.id: t for t in trials}

    def confirmed(idea_runs: list[Trial]) -> Confirmed:
        scored = [t for t in idea_runs if t.is_scored and t.score is not None]
        return Confirmed(
            trial=by_id.get(idea_runs[0].confirms or 0, idea_runs[0]),
            runs=tuple(idea_runs),
            val={t.seed: t.score for t in scored if t.score is not None},
            test={t.seed: t.test_score for t in scored if t.test_score is not None},
            failed=sum(t.status is TrialStatus.FAILED for t in idea_runs),
        )

    base = confirmed(runs.pop(baseline.idea_id, [])) if baseline.idea_id in runs else None
    if base is None:
        return None
    candidates = sorted(
        (confirmed(group) for group in runs.values()),
        key=lambda c: (
            not c.val,
            direction.sort_key(statistics.fmean(c.val.values())) if c.val else 0.0,
            c.trial.number,
        ),
    )
    split = "test" if base.test or any(c.test for c in candidates) else "val"
    differences = {
        c.trial.id: bootstrap_difference(c.on(split), base.on(split), seed=c.trial.number) for c in candidates
    }
    return Verdict(split, base, tuple(candidates), differences, direction)
