"""Dispatch through Celery workers on loopback: queued -> running latency, and how busy workers stay.

Starts `autoresearch worker --queues cpu` processes against the local Redis and PostgreSQL, queues
trials of the zero-cost `tiny` environment (each a real sandboxed train + evaluate), and reads
from the database when each trial was claimed and finished. Prints, and writes to
bench/results/dispatch.json:

- latency from queueing a trial to a worker claiming it, p50 / p99, when trials are queued at a
  rate below the workers' capacity;
- with every trial queued at once (saturation): each worker's busy fraction (time spent in
  trials over its span from first claim to last finish) and its idle gaps between trials, for the
  zero-cost trial and for one that sleeps --slow-trial-s longer (the gap per trial is about
  fixed, so the busy fraction depends on how long trials are).

A raw Redis round trip (PING, p99) is measured in the same run as the floor.

    python bench/dispatch.py [--workers 4] [--trials 40] [--rate 5] [--slow-trial-s 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from autoresearch.adapters.db import open_store
from autoresearch.domain.diffs import make_diff
from autoresearch.domain.model import IdeaOrigin, Trial
from autoresearch.environment import load_environment
from autoresearch.services.campaign import create_campaign
from autoresearch.services.store import Store
from autoresearch.testing import ENVIRONMENTS_DIR

ADMIN_URL = os.environ.get(
    "AUTORESEARCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BROKER = "redis://127.0.0.1:6379/13"
RESULTS = Path(__file__).parent / "results" / "dispatch.json"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def redis_round_trip_ms(n: int = 2000) -> float:
    client = redis.Redis.from_url(BROKER)
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        client.ping()
        samples.append((time.perf_counter() - started) * 1000)
    return percentile(samples, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=40, help="trials in each of the two runs")
    parser.add_argument("--rate", type=float, default=5.0, help="trials queued per second in the latency run")
    parser.add_argument("--slow-trial-s", type=float, default=1.0, help="the longer trials' sleep, seconds")
    args = parser.parse_args()

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"autoresearch_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    redis.Redis.from_url(BROKER).flushdb()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")} | {
                "AUTORESEARCH_DATABASE_URL": url,
                "AUTORESEARCH_BROKER_URL": BROKER,
                "AUTORESEARCH_DATA_DIR": tmp,
                "AUTORESEARCH_ENVIRONMENTS_PATH": str(ENVIRONMENTS_DIR),
            }
            os.environ["AUTORESEARCH_BROKER_URL"] = BROKER
            from workers.app import make_app

            app = make_app()
            store = open_store(url)
            tiny = load_environment(ENVIRONMENTS_DIR / "tiny")
            campaign = create_campaign(
                store,
                tiny,
                preset=None,
                strategy="evolve",
                trials=1,
                concurrency=1,
                seed=0,
                name=None,
                goal="",
            )

            def new_trials(n: int, code_diff: str = "") -> list[Trial]:
                """n trials of one recipe, each its own idea (an idea is implemented once)."""
                hypothesis = "the recipe as shipped"
                ideas = [
                    store.add_idea(campaign.id, hypothesis=hypothesis, origin=IdeaOrigin.BASELINE)
                    for _ in range(n)
                ]
                return [
                    store.add_trial(campaign.id, idea_id=i.id, parent_id=None, seed=0, code_diff=code_diff)
                    for i in ideas
                ]

            for i in range(args.workers):
                workers.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "autoresearch",
                            "worker",
                            "--queues",
                            "cpu",
                            "--name",
                            f"w{i}@%h",
                            "--loglevel",
                            "WARNING",
                        ],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            warm = new_trials(args.workers * 2)  # workers start, import torch-free code, prepare data
            for trial in warm:
                app.send_task("autoresearch.run_trial", args=[trial.id], queue="cpu")
            wait_all(store, warm)

            queued_at: dict[int, datetime] = {}
            paced = new_trials(args.trials)
            for trial in paced:
                queued_at[trial.id] = datetime.now().astimezone()
                app.send_task("autoresearch.run_trial", args=[trial.id], queue="cpu")
                time.sleep(1 / args.rate)
            done = wait_all(store, paced)
            latency = [
                (t.started_at - queued_at[t.id]).total_seconds() * 1000
                for t in done
                if t.started_at is not None
            ]

            saturated = {"tiny": saturate(store, app, new_trials(args.trials))}
            slow = make_diff(tiny.read_editable(), slowed(tiny.read_editable(), args.slow_trial_s))
            saturated[f"tiny+{args.slow_trial_s:g}s"] = saturate(store, app, new_trials(args.trials, slow))
            store.close()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "workers": args.workers,
        "trials_per_run": args.trials,
        "paced_rate_per_s": args.rate,
        "queued_to_running_ms": {"p50": percentile(latency, 50), "p99": percentile(latency, 99)},
        # Every trial queued at once, by trial length: the idle gap per trial is about constant, so
        # the busy fraction grows with the length of a trial.
        "saturated": saturated,
        "baseline_redis_ping_p99_ms": redis_round_trip_ms(),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def slowed(code: dict[str, str], seconds: float) -> dict[str, str]:
    return {**code, "train.py": f"import time\ntime.sleep({seconds})\n" + code["train.py"]}


def saturate(store: Store, app: Celery, burst: list[Trial]) -> dict[str, Any]:
    """Queue every trial at once; each worker's busy fraction (time in trials over its span from
    first claim to last finish) and the idle gaps between its trials."""
    for trial in burst:
        app.send_task("autoresearch.run_trial", args=[trial.id], queue="cpu")
    by_worker: dict[str, list[Trial]] = {}
    for trial in wait_all(store, burst):
        by_worker.setdefault(trial.worker, []).append(trial)
    busy, gaps, lengths = {}, [], []
    for worker, trials in by_worker.items():
        trials.sort(key=lambda t: t.started_at or datetime.min)
        spans = [
            (t.finished_at - t.started_at).total_seconds() for t in trials if t.started_at and t.finished_at
        ]
        first, last = trials[0].started_at, trials[-1].finished_at
        busy[worker] = round(sum(spans) / (last - first).total_seconds(), 3) if first and last else 0.0
        lengths += [s * 1000 for s in spans]
        gaps += [
            (b.started_at - a.finished_at).total_seconds() * 1000
            for a, b in itertools.pairwise(trials)
            if a.finished_at and b.started_at
        ]
    return {
        "trial_ms_median": round(statistics.median(lengths), 1),
        "busy_fraction": dict(sorted(busy.items())),
        "idle_gap_ms": {"p50": percentile(gaps, 50), "p99": percentile(gaps, 99)} if gaps else {},
    }


def wait_all(store: Store, trials: list[Trial], seconds: float = 600) -> list[Trial]:
    deadline = time.monotonic() + seconds
    while True:
        current = [store.get_trial(t.id) for t in trials]
        if all(t.status.is_terminal for t in current):
            return current
        if time.monotonic() > deadline:
            raise SystemExit(f"trials still unfinished after {seconds} s")
        time.sleep(0.2)


if __name__ == "__main__":
    main()
