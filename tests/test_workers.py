"""Trials run by workers: leases, heartbeats and fenced results, then a real Celery worker process
on the real Redis recording into the real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from autoresearch.adapters.artifacts import S3Artifacts, bundle_key, read_bundle
from autoresearch.adapters.db import SqlStore, open_store
from autoresearch.adapters.sandbox import make_sandbox
from autoresearch.domain.model import FailureLabel, IdeaOrigin, Trial, TrialResult, TrialStatus
from autoresearch.services.campaign import create_campaign
from autoresearch.services.runner import TrialJob, TrialRunner, prepare_data
from autoresearch.services.store import Store
from autoresearch.services.worker import execute_trial
from autoresearch.settings import Settings
from autoresearch.testing import ENVIRONMENTS_DIR
from tests.test_campaign import ENV

TEST_BROKER = "redis://127.0.0.1:6379/15"


def pending_trial(store: Store, code_diff: str = "") -> Trial:
    campaign = create_campaign(
        store, ENV, preset=None, strategy="evolve", trials=2, concurrency=1, seed=0, name=None, goal=""
    )
    idea = store.add_idea(campaign.id, hypothesis="the recipe as shipped", origin=IdeaOrigin.BASELINE)
    return store.add_trial(campaign.id, idea_id=idea.id, parent_id=None, seed=0, code_diff=code_diff)


def test_a_worker_claims_runs_and_records_a_trial_once(store: SqlStore, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    sandbox, _ = make_sandbox(settings.sandbox)
    runner = TrialRunner(ENV, "quick", settings, sandbox, prepare_data(ENV, settings))
    trial = pending_trial(store)

    def run() -> Trial | None:
        return execute_trial(
            store,
            trial.id,
            worker="box:1",
            lease_s=30,
            environment_named=lambda _: ENV,
            runner_for=lambda *_: runner,
        )

    finished = run()
    assert finished is not None and finished.status is TrialStatus.SUCCEEDED and finished.score == 11.0
    assert (finished.worker, finished.lease_token) == ("box:1", 1)
    assert run() is None  # a redelivered message: the trial is no longer pending
    assert store.get_trial(trial.id) == finished


class WaitsForCancel:
    """A trial that trains until it is told to stop."""

    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        assert cancel is not None
        cancel.wait(10)
        return TrialResult.failed(FailureLabel.CANCELLED, "stopped")


def test_a_worker_that_loses_its_lease_stops_and_records_nothing(store: SqlStore) -> None:
    trial = pending_trial(store)
    outcome: list[Trial | None] = []
    working = threading.Thread(
        target=lambda: outcome.append(
            execute_trial(
                store,
                trial.id,
                worker="slow-box:7",
                lease_s=0.6,
                environment_named=lambda _: ENV,
                runner_for=lambda *_: WaitsForCancel(),  # type: ignore[arg-type,return-value]
            )
        )
    )
    started = time.monotonic()
    working.start()
    while store.get_trial(trial.id).status is TrialStatus.PENDING:
        time.sleep(0.01)
    # As the sweeper sees it once the worker's heartbeats stop arriving:
    [expired] = store.expire_leases(now=datetime.now(UTC) + timedelta(seconds=5))
    working.join(timeout=10)

    assert outcome == [None] and time.monotonic() - started < 5
    assert expired.id == trial.id and store.get_trial(trial.id).label is FailureLabel.WORKER_LOST


@pytest.fixture
def broker() -> str:
    try:
        client = redis.Redis.from_url(TEST_BROKER, socket_connect_timeout=3)
        client.flushdb()
    except redis.ConnectionError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis at {TEST_BROKER} is unreachable: {exc}")
        pytest.skip(f"Redis at {TEST_BROKER} is unreachable: {exc}")
    return TEST_BROKER


@pytest.mark.timeout(120)
def test_a_celery_worker_process_runs_a_queued_trial_into_postgres_and_s3(
    postgres_url: str, broker: str, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")} | {
        "AUTORESEARCH_DATABASE_URL": postgres_url,
        "AUTORESEARCH_BROKER_URL": broker,
        "AUTORESEARCH_DATA_DIR": str(tmp_path / "worker"),
        "AUTORESEARCH_ENVIRONMENTS_PATH": str(ENVIRONMENTS_DIR),
        "AUTORESEARCH_ARTIFACTS_URL": "s3://trials/cluster",
        "AUTORESEARCH_S3_ENDPOINT_URL": s3_endpoint,
    }
    store = open_store(postgres_url)
    trial = pending_trial(store)
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(  # the command a user runs on each worker machine
        [sys.executable, "-m", "autoresearch", "worker", "--queues", "cpu"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        monkeypatch.setenv("AUTORESEARCH_BROKER_URL", broker)
        from workers.app import make_app

        make_app().send_task("autoresearch.run_trial", args=[trial.id], queue="cpu")
        deadline = time.monotonic() + 90
        while (current := store.get_trial(trial.id)).status in (TrialStatus.PENDING, TrialStatus.RUNNING):
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        store.close()
    assert current.status is TrialStatus.SUCCEEDED and current.score == 11.0
    assert current.worker.endswith(f":{worker.pid}") and current.lease_token == 1
    bundle = S3Artifacts("trials", "cluster", s3_endpoint).get(bundle_key(current.code_hash))
    assert read_bundle(bundle) == ENV.read_editable()
