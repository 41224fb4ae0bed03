"""Run a finished trial again from its record, and say whether the re-run agrees with it.

The trial's code runs through the same runner at its recorded seed, then on further seeds: their
spread is the program's noise floor (the campaign's confirmation of its baseline gives one too). A
re-run reproduces the trial when its score is within the noise floor of the recorded one. What
changed since (the environment's files, Python, torch, the hardware, the sandbox) is listed beside.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoresearch.domain.diffs import apply_diff
from autoresearch.domain.model import Trial, TrialResult
from autoresearch.environment import Environment
from autoresearch.errors import ConfigError
from autoresearch.services.runner import TrialJob, TrialRunner

_COMPARED = ("environment_digest", "python", "packages", "cpu", "gpus", "gpu_driver", "sandbox")


@dataclass(frozen=True)
class Rerun:
    seed: int
    score: float | None
    failure: str = ""  # the label and reason when it did not score


@dataclass(frozen=True)
class Reproduction:
    trial: Trial
    runs: tuple[Rerun, ...]  # the first at the trial's own seed
    campaign_noise: float | None  # the baseline's sd over the campaign's confirmation seeds, if measured
    changed: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)  # record key -> (then, now)

    @property
    def same_seed(self) -> Rerun:
        return self.runs[0]

    @property
    def difference(self) -> float | None:
        score, recorded = self.same_seed.score, self.trial.score
        return None if score is None or recorded is None else score - recorded

    @property
    def program_noise(self) -> float | None:
        """The sd of the program's scores over the seeds it was run on here."""
        scores = [run.score for run in self.runs if run.score is not None]
        return statistics.stdev(scores) if len(scores) > 1 else None

    @property
    def noise_floor(self) -> float | None:
        known = [sd for sd in (self.program_noise, self.campaign_noise) if sd is not None]
        return max(known) if known else None

    @property
    def reproduced(self) -> bool | None:
        """Within the noise floor of the record; None when there is no floor to judge by."""
        if self.difference is None:
            return False
        if self.difference == 0:
            return True
        floor = self.noise_floor
        return None if floor is None else abs(self.difference) <= floor


def reproduce(
    trial: Trial,
    env: Environment,
    runner: TrialRunner,
    *,
    seeds: int,
    campaign_noise: float | None,
    cancel: threading.Event | None = None,
) -> Reproduction:
    """Re-run `trial` at its own seed and on `seeds - 1` more (the ones after it), in folders of their own."""
    if not trial.is_scored:
        raise ConfigError(f"trial {trial.number} has no score to reproduce ({trial.label or trial.status})")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    baseline = env.read_editable()
    code = apply_diff(baseline, trial.code_diff) if trial.code_diff else baseline
    runs = []
    for seed in [trial.seed, *(trial.seed + 1000 + i for i in range(seeds - 1))]:
        job = TrialJob(
            trial.campaign_id, trial.id, trial.number, seed, code, folder=f"reproduce/{trial.number}-{seed}"
        )
        runs.append(_rerun(seed, runner.run(job, cancel)))
        if cancel is not None and cancel.is_set():
            break
    now = runner.record(
        TrialJob(trial.campaign_id, trial.id, trial.number, trial.seed, code), trial.code_hash
    )
    changed = {
        key: (trial.record.get(key), now.get(key))
        for key in _COMPARED
        if key in trial.record and trial.record.get(key) != now.get(key)
    }
    return Reproduction(trial, tuple(runs), campaign_noise, changed)


def _rerun(seed: int, result: TrialResult) -> Rerun:
    if result.score is not None:
        return Rerun(seed, result.score)
    return Rerun(seed, None, f"{result.label}: {result.reason}")
