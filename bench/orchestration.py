"""The cost of the service around a trial, measured with a zero-cost environment.

Prints, and writes to bench/results/orchestration.json:

- controller overhead: ms per trial of the whole loop (propose, implement, record in the store,
  pick parents) with an in-process runner that returns at once, at 200, 1,000 and 10,000 trials,
  with the cost of the last 10% of trials to show whether it stays flat as the lineage grows;
- trials/s with per-trial process isolation (train and evaluate each a real subprocess, in the
  bubblewrap sandbox and without), at concurrency 2;
- the floor for the same machine in the same run: `sys.executable -c pass`, two at a time.

    python bench/orchestration.py [--sizes 200 1000 10000] [--process-trials 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autoresearch.adapters.db import open_store
from autoresearch.adapters.sandbox import make_sandbox
from autoresearch.domain.diffs import make_diff
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import IdeaOrigin, Trial, TrialResult
from autoresearch.environment import Environment, load_environment
from autoresearch.services.campaign import CampaignController, create_campaign
from autoresearch.services.proposer import Proposal
from autoresearch.services.runner import TrialJob, TrialRunner, prepare_data
from autoresearch.settings import SandboxMode, Settings
from autoresearch.testing import ENVIRONMENTS_DIR

RESULTS = Path(__file__).parent / "results" / "orchestration.json"


class EndlessMutations:
    """Proposes a fresh value of `x` every time, so a campaign of any size never runs dry."""

    def propose(
        self, parent: Trial, parent_code: Mapping[str, str], lineage: Lineage, rng: random.Random
    ) -> Proposal:
        old = parent_code["recipe.py"]
        value = round(rng.uniform(-10, 10), 6)
        new = "\n".join(f"x = {value}" if line.startswith("x = ") else line for line in old.split("\n"))
        diff = make_diff({"recipe.py": old}, {"recipe.py": new})
        return Proposal(f"x = {value}", IdeaOrigin.MUTATION, diff, "hyperparameters", f"x={value}")


class InstantRunner:
    """Scores the code in-process, as the tiny evaluator would, without starting anything."""

    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        x = float(next(line for line in job.code["recipe.py"].split("\n") if line.startswith("x = "))[4:])
        return TrialResult.scored((x - 3) ** 2 + 2, duration_s=0.0)


def _controller(
    env: Environment, settings: Settings, url: str, trials: int, runner: object, name: str
) -> CampaignController:
    store = open_store(url)
    campaign = create_campaign(
        store,
        env,
        preset="quick",
        strategy="evolve",
        trials=trials,
        concurrency=2,
        seed=0,
        name=name,
        goal="",
    )
    return CampaignController(store, campaign, env, runner, EndlessMutations())  # type: ignore[arg-type]


class _Timed:
    """Wraps the runner to time the last 10% of trials separately."""

    def __init__(self, inner: InstantRunner, trials: int) -> None:
        self.inner, self.tail_from, self.count, self.tail_started = inner, int(trials * 0.9), 0, 0.0
        self.lock = threading.Lock()

    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        with self.lock:
            self.count += 1
            if self.count == self.tail_from:
                self.tail_started = time.perf_counter()
        return self.inner.run(job, cancel)


def controller_overhead(
    env: Environment, settings: Settings, url: str, sizes: list[int]
) -> list[dict[str, float]]:
    rows = []
    for n in sizes:
        runner = _Timed(InstantRunner(), n)
        controller = _controller(env, settings, url, n, runner, f"overhead-{n}-{time.time_ns()}")
        started = time.perf_counter()
        controller.run()
        total = time.perf_counter() - started
        tail = time.perf_counter() - runner.tail_started
        tail_n = n - runner.tail_from + 1
        controller.store.close()
        rows.append(
            {
                "trials": n,
                "ms_per_trial": 1000 * total / n,
                "ms_per_trial_last_10pct": 1000 * tail / tail_n,
                "trials_per_s": n / total,
            }
        )
        print(
            f"controller  {n:>6} trials  {rows[-1]['ms_per_trial']:.2f} ms/trial  "
            f"(last 10%: {rows[-1]['ms_per_trial_last_10pct']:.2f} ms/trial)"
        )
    return rows


def process_trials(
    env: Environment, settings: Settings, url: str, n: int, sandbox_mode: SandboxMode
) -> dict[str, float]:
    sandbox = make_sandbox(sandbox_mode)
    runner = TrialRunner(env, "quick", settings, sandbox, prepare_data(env, settings))
    controller = _controller(env, settings, url, n, runner, f"process-{sandbox_mode}-{time.time_ns()}")
    started = time.perf_counter()
    outcome = controller.run()
    total = time.perf_counter() - started
    counts = controller.store.count_trials(outcome.campaign.id)
    controller.store.close()
    row = {
        "trials": n,
        "sandboxed": sandbox.isolated,
        "trials_per_s": n / total,
        "ms_per_trial": 1000 * total / n,
    }
    print(
        f"processes   {n:>6} trials  sandbox={'bwrap' if sandbox.isolated else 'none ':5}  "
        f"{row['trials_per_s']:.1f} trials/s  ({dict((str(k), v) for k, v in counts.items())})"
    )
    return row


def spawn_floor(n: int = 300) -> dict[str, float]:
    def spawn(_: int) -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    with ThreadPoolExecutor(2) as pool:
        started = time.perf_counter()
        list(pool.map(spawn, range(n)))
        total = time.perf_counter() - started
    row = {"processes": n, "processes_per_s": n / total, "ms_per_process": 1000 * total / n * 2}
    print(f"floor       {n:>6} x `python -c pass`, 2 at a time: {row['processes_per_s']:.1f} processes/s")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 10000])
    parser.add_argument("--process-trials", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    env = load_environment(ENVIRONMENTS_DIR / "tiny")
    with tempfile.TemporaryDirectory(prefix="ar-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), keep_trial_dirs=False)
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        floor = spawn_floor()
        overhead = controller_overhead(env, settings, url, args.sizes)
        processes = [
            process_trials(env, settings, url, args.process_trials, mode)
            for mode in (SandboxMode.NONE, SandboxMode.AUTO)
        ]
    per_trial_floor = floor["processes_per_s"] / 2  # a trial is two processes: train and evaluate
    for row in processes:
        row["ratio_to_floor"] = row["trials_per_s"] / per_trial_floor
        print(
            f"            {'bwrap' if row['sandboxed'] else 'none'}: {row['ratio_to_floor']:.2f}x the two-process floor "
            f"of {per_trial_floor:.1f} trials/s"
        )
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
            "platform": platform.platform(),
        },
        "database": "sqlite" if args.database_url is None else args.database_url.split(":")[0],
        "floor": floor,
        "controller_overhead": overhead,
        "process_isolated_trials": processes,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
