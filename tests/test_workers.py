"""Trials run by workers: leases, heartbeats and fenced results, then a real Celery worker process
on the real Redis recording into the real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from autoresearch.adapters.artifacts import S3Artifacts, bundle_key, read_bundle
from autoresearch.adapters.db import SqlStore, open_store
from autoresearch.adapters.sandbox import make_sandbox
from autoresearch.domain.diffs import make_diff
from autoresearch.domain.model import FailureLabel, IdeaOrigin, Trial, TrialResult, TrialStatus
from autoresearch.services.campaign import create_campaign
from autoresearch.services.runner import TrialJob, TrialRunner, prepare_data
from autoresearch.services.store import Store
from autoresearch.services.worker import execute_trial, requeue_lost
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


class Cluster:
    """Worker processes as a user starts them (`autoresearch worker`), on the real Redis and PostgreSQL."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.workers: list[subprocess.Popen[bytes]] = []
        from workers.app import make_app  # the broker URL comes from the environment, set before this

        self.app = make_app()

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.workers)}.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "autoresearch", "worker", "--queues", "cpu"],
            env=self.env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(worker)
        return worker

    def queue(self, trial_id: int) -> None:
        self.app.send_task("autoresearch.run_trial", args=[trial_id], queue="cpu")

    def wait_for(
        self, store: Store, trial_id: int, until: tuple[TrialStatus, ...], seconds: float = 90
    ) -> Trial:
        deadline = time.monotonic() + seconds
        while (current := store.get_trial(trial_id)).status not in until:
            logs = "\n".join(p.read_text() for p in sorted(self.logs.glob("worker-*.log")))
            assert time.monotonic() < deadline, f"trial {trial_id} stayed {current.status}\n{logs}"
            time.sleep(0.1)
        return current

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)


@pytest.fixture
def cluster(
    postgres_url: str, broker: str, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    monkeypatch.setenv("AUTORESEARCH_BROKER_URL", broker)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")} | {
        "AUTORESEARCH_DATABASE_URL": postgres_url,
        "AUTORESEARCH_BROKER_URL": broker,
        "AUTORESEARCH_DATA_DIR": str(tmp_path / "worker"),
        "AUTORESEARCH_ENVIRONMENTS_PATH": str(ENVIRONMENTS_DIR),
        "AUTORESEARCH_ARTIFACTS_URL": "s3://trials/cluster",
        "AUTORESEARCH_S3_ENDPOINT_URL": s3_endpoint,
        "AUTORESEARCH_LEASE_S": "1",
    }
    running = Cluster(env, tmp_path)
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.timeout(120)
def test_a_celery_worker_process_runs_a_queued_trial_into_postgres_and_s3(
    cluster: Cluster, postgres_url: str, s3_endpoint: str
) -> None:
    store = open_store(postgres_url)
    trial = pending_trial(store)
    worker = cluster.start_worker()
    cluster.queue(trial.id)
    current = cluster.wait_for(store, trial.id, (TrialStatus.SUCCEEDED, TrialStatus.FAILED))
    store.close()
    assert current.status is TrialStatus.SUCCEEDED and current.score == 11.0
    assert current.worker.endswith(f":{worker.pid}") and current.lease_token == 1
    bundle = S3Artifacts("trials", "cluster", s3_endpoint).get(bundle_key(current.code_hash))
    assert read_bundle(bundle) == ENV.read_editable()


@pytest.mark.timeout(120)
def test_a_trial_whose_worker_is_killed_runs_again_elsewhere_and_is_recorded_once(
    cluster: Cluster, postgres_url: str
) -> None:
    store = open_store(postgres_url)
    baseline = ENV.read_editable()
    slow = {**baseline, "train.py": "import time\ntime.sleep(6)\n" + baseline["train.py"]}
    trial = pending_trial(store, code_diff=make_diff(baseline, slow))
    first = cluster.start_worker()
    cluster.queue(trial.id)
    cluster.wait_for(store, trial.id, (TrialStatus.RUNNING,))
    os.killpg(first.pid, signal.SIGKILL)  # the worker and everything it started
    first.wait()
    time.sleep(1.5)  # past the 1 s lease: no heartbeat renewed it
    second = cluster.start_worker()
    [retry] = requeue_lost(store, cluster.queue)
    done = cluster.wait_for(store, retry.id, (TrialStatus.SUCCEEDED, TrialStatus.FAILED))
    lost = store.get_trial(trial.id)
    statuses = [t.status for t in store.list_trials(trial.campaign_id)]
    store.close()
    assert lost.label is FailureLabel.WORKER_LOST and lost.worker.endswith(f":{first.pid}")
    assert done.status is TrialStatus.SUCCEEDED and done.retry_of == trial.id
    assert done.worker.endswith(f":{second.pid}")
    assert statuses == [TrialStatus.INTERRUPTED, TrialStatus.SUCCEEDED]  # recorded once


def test_an_idea_lost_too_often_keeps_its_worker_lost_label(store: SqlStore) -> None:
    trial = pending_trial(store)
    queued: list[int] = []
    for _ in range(3):
        assert store.claim_trial(trial.id, worker="flaky", lease_s=1) is not None
        later = datetime.now(UTC) + timedelta(seconds=5)
        retries = requeue_lost(store, queued.append, max_tries=3, now=later)
        if not retries:
            break
        trial = retries[0]
    assert len(queued) == 2  # three tries in all, then the label stays
    assert store.get_trial(trial.id).label is FailureLabel.WORKER_LOST
