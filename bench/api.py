"""The REST API on a generated 10,000-trial campaign in PostgreSQL: p50 / p95 of the list, trial, ancestors
and lineage routes, one client at a time and with 20 concurrent clients (connections kept alive, each
sending its next request when the last is answered).

Creates a scratch database, fills it with one campaign of --trials trials (a random tree: each trial's
parent is an earlier trial, a tenth of them failed with a label), starts `autoresearch api` on loopback
and times real HTTP requests with a read token. Prints, and writes to bench/results/api.json. The
floor measured in the same run is `GET /api/v1/health`, which touches no table. The load comes from this
machine too: `client_cpu_ms` is what it cost per request, taken from the cores the server had.

    python bench/api.py [--trials 10000] [--requests 1600] [--clients 20] [--api-workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx2 as httpx
from sqlalchemy import create_engine, insert, make_url, text
from sqlalchemy.pool import NullPool

from autoresearch.adapters.db import open_store
from autoresearch.adapters.db.models import IdeaRow, TrialRow
from autoresearch.domain.model import FailureLabel, IdeaOrigin, Scope, TrialStatus
from autoresearch.services.auth import issue_token

ADMIN_URL = os.environ.get(
    "AUTORESEARCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RESULTS = Path(__file__).parent / "results" / "api.json"
LABELS = [FailureLabel.CRASH, FailureLabel.TIMEOUT, FailureLabel.OOM, FailureLabel.PATCH_FAILED]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 2)


def fill(url: str, trials: int) -> tuple[str, str]:
    """One campaign of `trials` trials in a random tree; its name and a read token."""
    store = open_store(url)
    campaign = store.create_campaign(
        name="bench",
        environment="tiny",
        preset="quick",
        strategy="evolve",
        goal="bench the API",
        trial_budget=trials,
        concurrency=8,
        seed=0,
    )
    secret, _ = issue_token(store, name="bench", scope=Scope.READ)
    rng = random.Random(0)
    now = datetime.now(UTC)
    ideas: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for n in range(trials):
        parent = rng.randrange(n) if n else None
        failed = n and rng.random() < 0.1
        ideas.append(
            {
                "id": n + 1,
                "campaign_id": campaign.id,
                "hypothesis": f"idea {n}: change something about the recipe",
                "origin": IdeaOrigin.BASELINE if n == 0 else IdeaOrigin.MUTATION,
                "surface": "",
                "key": f"k{n}",
                "parent_trial_ids": [parent + 1] if parent is not None else [],
                "diff": "",
                "rationale": "",
            }
        )
        rows.append(
            {
                "id": n + 1,
                "campaign_id": campaign.id,
                "number": n,
                "idea_id": n + 1,
                "parent_id": parent + 1 if parent is not None else None,
                "status": TrialStatus.FAILED if failed else TrialStatus.SUCCEEDED,
                "seed": 0,
                "label": rng.choice(LABELS) if failed else None,
                "score": None if failed else 3.0 + rng.random(),
                "metrics": {},
                "reason": "",
                "log_tail": "",
                "code_hash": "",
                "code_diff": "",
                "created_at": now,
                "started_at": now,
                "finished_at": now,
            }
        )
    with store.engine.begin() as connection:
        connection.execute(insert(IdeaRow), ideas)
        connection.execute(insert(TrialRow), rows)
        connection.execute(text("SELECT setval('ideas_id_seq', :n)"), {"n": trials})
        connection.execute(text("SELECT setval('trials_id_seq', :n)"), {"n": trials})
        connection.execute(text("ANALYZE"))
    store.close()
    return campaign.name, secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def timed(session: aiohttp.ClientSession, path: str) -> float:
    started = time.perf_counter()
    async with session.get(path) as response:
        body = await response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {body[:300]!r}")
    return elapsed


def measure(
    base: str, token: str, paths: Callable[[random.Random], str], n: int, clients: int
) -> dict[str, Any]:
    """`clients` kept-alive connections, each sending its next request as soon as its last is answered,
    from one event loop: far cheaper per request than a thread per client, and this machine's cores are
    the server's too."""

    async def client(seed: int) -> list[float]:
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {token}"}
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(base, headers=headers, connector=connector) as session:
            await timed(session, paths(rng))  # a warm connection
            return [await timed(session, paths(rng)) for _ in range(n // clients)]

    async def load() -> list[float]:
        batches = await asyncio.gather(*(client(seed) for seed in range(clients)))
        return [sample for batch in batches for sample in batch]

    started, cpu = time.perf_counter(), time.process_time()
    samples = asyncio.run(load())
    wall_s = time.perf_counter() - started
    return {
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "requests": len(samples),
        "per_s": round(len(samples) / wall_s),
        "client_cpu_ms": round((time.process_time() - cpu) * 1000 / len(samples), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=1600, help="requests per route and concurrency level")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--api-workers", type=int, default=2, help="`autoresearch api --workers`")
    args = parser.parse_args()

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"autoresearch_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    server: subprocess.Popen[bytes] | None = None
    try:
        started = time.perf_counter()
        campaign, token = fill(url, args.trials)
        fill_s = time.perf_counter() - started
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")}
        env |= {"AUTORESEARCH_DATABASE_URL": url, "AUTORESEARCH_DATA_DIR": tempfile.mkdtemp()}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autoresearch",
                "api",
                "--port",
                str(port),
                "--workers",
                str(args.api_workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the API did not start")
            time.sleep(0.2)

        n = args.trials
        routes: dict[str, Callable[[random.Random], str]] = {
            "health": lambda rng: "/api/v1/health",
            "list": lambda rng: f"/api/v1/campaigns/{campaign}/trials?limit=50&sort=-number",
            "list_by_score": lambda rng: f"/api/v1/campaigns/{campaign}/trials?limit=50&sort=score",
            "trial": lambda rng: f"/api/v1/campaigns/{campaign}/trials/{rng.randrange(n)}",
            "ancestors": lambda rng: f"/api/v1/campaigns/{campaign}/trials/{rng.randrange(n)}/ancestors",
            "lineage": lambda rng: f"/api/v1/campaigns/{campaign}/lineage",
        }
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "trials": n,
            "api_workers": args.api_workers,
            "fill_s": round(fill_s, 1),
            "one_client": {},
            f"{args.clients}_clients": {},
        }
        for route, path in routes.items():
            requests = args.requests if route != "lineage" else max(args.clients, args.requests // 10)
            report["one_client"][route] = measure(base, token, path, requests // 4, 1)
            report[f"{args.clients}_clients"][route] = measure(base, token, path, requests, args.clients)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
