"""The cluster: leases, heartbeats and fenced results; then real Celery worker processes and a real
controller on the real Redis, recording into the real PostgreSQL, with bundles in a loopback S3."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from autoresearch.adapters.artifacts import S3Artifacts, bundle_key, read_bundle
from autoresearch.adapters.db import SqlStore, open_store
from autoresearch.adapters.sandbox import make_sandbox
from autoresearch.domain.model import (
    Campaign,
    CampaignStatus,
    FailureLabel,
    IdeaOrigin,
    Trial,
    TrialResult,
    TrialRole,
    TrialStatus,
)
from autoresearch.environment import find_environment
from autoresearch.services.campaign import create_campaign
from autoresearch.services.implementer import DiffImplementer
from autoresearch.services.runner import TrialJob, TrialRunner, prepare_data
from autoresearch.services.store import Store
from autoresearch.services.worker import execute_trial, implement_queued
from autoresearch.settings import Settings
from autoresearch.testing import ENVIRONMENTS_DIR
from tests.test_campaign import ENV

TEST_BROKER = "redis://127.0.0.1:6379/15"
SLOW_ENVIRONMENTS = Path()  # where the cluster fixture put tiny_slow


def pending_trial(store: Store, code_diff: str = "") -> Trial:
    campaign = create_campaign(
        store, ENV, preset=None, strategy="evolve", trials=2, concurrency=1, seed=0, name=None, goal=""
    )
    idea = store.add_idea(campaign.id, hypothesis="the recipe as shipped", origin=IdeaOrigin.BASELINE)
    return store.add_trial(campaign.id, idea_id=idea.id, parent_id=None, seed=0, code_diff=code_diff)


def test_a_worker_claims_runs_and_records_a_trial_once(store: SqlStore, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    sandbox = make_sandbox(settings.sandbox)
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


def slow_tiny(root: Path, seconds: float) -> Path:
    """A copy of the tiny environment, named tiny_slow, whose training takes `seconds`."""
    env_dir = root / "tiny_slow"
    shutil.copytree(ENVIRONMENTS_DIR / "tiny", env_dir)
    toml = env_dir / "environment.toml"
    toml.write_text(toml.read_text().replace('name = "tiny"', 'name = "tiny_slow"', 1))
    train = env_dir / "train.py"
    train.write_text(f"import time\ntime.sleep({seconds})\n" + train.read_text())
    return root


class Cluster:
    """Processes as a user starts them (`autoresearch worker`, `autoresearch controller`), on the real
    Redis and PostgreSQL."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.log_of: dict[int, Path] = {}
        from workers.app import make_app  # the broker URL comes from the environment, set before this

        self.app = make_app()

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.logs / f"{args[0]}-{len(self.processes)}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "autoresearch", *args],
            env=self.env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        self.log_of[process.pid] = log
        return process

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        return self.start("worker", *(args or ("--queues", "cpu")))

    def queue(self, trial_id: int, queue: str = "cpu") -> None:
        self.app.send_task("autoresearch.run_trial", args=[trial_id], queue=queue)

    def logs_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(self.logs.glob("*.log")))

    def wait_for(
        self, store: Store, trial_id: int, until: tuple[TrialStatus, ...], seconds: float = 90
    ) -> Trial:
        deadline = time.monotonic() + seconds
        while (current := store.get_trial(trial_id)).status not in until:
            assert time.monotonic() < deadline, (
                f"trial {trial_id} stayed {current.status}\n{self.logs_text()}"
            )
            time.sleep(0.1)
        return current

    def wait_until(self, done: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, f"{what} did not happen\n{self.logs_text()}"
            time.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def cluster(
    postgres_url: str, broker: str, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    monkeypatch.setenv("AUTORESEARCH_BROKER_URL", broker)
    environments = slow_tiny(tmp_path / "environments", seconds=4)
    monkeypatch.setattr(sys.modules[__name__], "SLOW_ENVIRONMENTS", environments)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")} | {
        "AUTORESEARCH_DATABASE_URL": postgres_url,
        "AUTORESEARCH_BROKER_URL": broker,
        "AUTORESEARCH_DATA_DIR": str(tmp_path / "worker"),
        "AUTORESEARCH_ENVIRONMENTS_PATH": f"{ENVIRONMENTS_DIR}:{environments}",
        "AUTORESEARCH_ARTIFACTS_URL": "s3://trials/cluster",
        "AUTORESEARCH_S3_ENDPOINT_URL": s3_endpoint,
        "AUTORESEARCH_LEASE_S": "1",
        "AUTORESEARCH_RECONCILE_S": "2",
        "COLUMNS": "200",
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


def distributed_campaign(
    store: Store, env_name: str, trials: int, concurrency: int, preset: str | None = None
) -> Campaign:
    env = find_environment(env_name, [ENVIRONMENTS_DIR, SLOW_ENVIRONMENTS])
    return create_campaign(
        store,
        env,
        preset=preset,
        strategy="evolve",
        trials=trials,
        concurrency=concurrency,
        seed=0,
        name=None,
        goal="",
        distributed=True,
    )


@pytest.mark.timeout(180)
def test_a_trial_whose_worker_is_killed_runs_again_elsewhere_and_is_recorded_once(
    cluster: Cluster, postgres_url: str, tmp_path: Path
) -> None:
    store = open_store(postgres_url)
    # The baseline of tiny_slow sleeps 4 s: long enough to kill its worker mid-trial.
    campaign = distributed_campaign(store, "tiny_slow", trials=1, concurrency=1)
    first = cluster.start_worker()
    cluster.start("controller")
    cluster.wait_until(
        lambda: any(t.status is TrialStatus.RUNNING for t in store.list_trials(campaign.id)),
        60,
        "the baseline starting",
    )
    os.killpg(first.pid, signal.SIGKILL)  # the worker and everything it started
    first.wait()
    second = cluster.start_worker()
    cluster.wait_until(
        lambda: store.get_campaign(campaign.id).status is CampaignStatus.FINISHED,
        90,
        "the campaign finishing",
    )
    lost, done = store.list_trials(campaign.id)
    store.close()
    assert lost.label is FailureLabel.WORKER_LOST and lost.worker.endswith(f":{first.pid}")
    assert done.status is TrialStatus.SUCCEEDED and done.retry_of == lost.id  # recorded once
    assert done.worker.endswith(f":{second.pid}")


@pytest.mark.timeout(240)
def test_a_trial_the_broker_lost_is_queued_again_by_the_controller(
    cluster: Cluster, postgres_url: str
) -> None:
    store = open_store(postgres_url)
    campaign = distributed_campaign(store, "tiny", trials=3, concurrency=1)
    cluster.start("controller")
    queued = redis.Redis.from_url(TEST_BROKER)
    cluster.wait_until(lambda: queued.llen("cpu") > 0, 60, "the baseline queued")
    queued.flushdb()  # Redis restarted without its data: the queue forgot the baseline
    cluster.start_worker("--queues", "cpu,implement")
    cluster.wait_until(
        lambda: store.get_campaign(campaign.id).status is CampaignStatus.FINISHED,
        120,
        "the campaign finishing",
    )
    trials = store.list_trials(campaign.id)
    store.close()
    assert [t.status for t in trials] == [TrialStatus.SUCCEEDED] * 3  # each run once, none lost
    assert "was in no queue: queued again" in cluster.logs_text()


@pytest.mark.timeout(180)
def test_a_gpu_worker_runs_four_quarter_gpu_trials_at_once_and_a_whole_gpu_trial_alone(
    cluster: Cluster, postgres_url: str
) -> None:
    store = open_store(postgres_url)
    quarter = distributed_campaign(store, "tiny_slow", trials=4, concurrency=4, preset="quarter_gpu")
    whole = distributed_campaign(store, "tiny_slow", trials=1, concurrency=1, preset="whole_gpu")
    small = [pending_trial_in(store, quarter) for _ in range(4)]
    large = pending_trial_in(store, whole)
    cluster.start_worker("--queues", "gpu", "--gpus", "0", "--slots-per-gpu", "4")
    for trial in [*small, large]:
        cluster.queue(trial.id, queue="gpu")
    finished = [cluster.wait_for(store, t.id, (TrialStatus.SUCCEEDED,), 120) for t in [*small, large]]
    [worker] = store.list_workers()
    store.close()
    listed = subprocess.run(
        [sys.executable, "-m", "autoresearch", "workers", "--json"],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert [(w["name"], w["queues"]) for w in json.loads(listed.stdout)] == [(worker.name, ["gpu"])]
    quarters, alone = finished[:4], finished[4]
    starts = [t.started_at for t in quarters if t.started_at]
    ends = [t.finished_at for t in quarters if t.finished_at]
    assert max(starts) < min(ends)  # all four ran at one moment, on the one GPU
    assert alone.started_at is not None and alone.started_at >= max(ends)  # it waited for the GPU
    assert {k: worker.capacity[k] for k in ("slots", "gpus", "slots_per_gpu")} == {
        "slots": 4,
        "gpus": ["0"],
        "slots_per_gpu": 4,
    }


def pending_trial_in(store: Store, campaign: Campaign) -> Trial:
    idea = store.add_idea(campaign.id, hypothesis="the recipe as shipped", origin=IdeaOrigin.BASELINE)
    return store.add_trial(campaign.id, idea_id=idea.id, parent_id=None, seed=0)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_nanogpt_campaign_runs_across_an_implement_worker_and_two_trial_workers(
    cluster: Cluster, postgres_url: str, s3_endpoint: str
) -> None:
    cluster.env["AUTORESEARCH_LEASE_S"] = "30"  # CPU-bound trainings on two cores: heartbeats may lag
    implementer = cluster.start_worker("--queues", "implement")
    trial_workers = [cluster.start_worker("--queues", "cpu") for _ in range(2)]
    cluster.start("controller")
    run = ("run", "nanogpt", "--preset", "smoke", "--trials", "6", "--concurrency", "2", "--name", "spread")
    run += ("--confirm-top", "1", "--confirm-seeds", "2", "--race", "0")  # confirmation runs on workers too
    cli = subprocess.run(
        [sys.executable, "-m", "autoresearch", *run, "--distributed"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert cli.returncode == 0, f"{cli.stdout}\n{cli.stderr}\n{cluster.logs_text()}"
    store = open_store(postgres_url)
    campaign = store.get_campaign("spread")
    trials = store.list_trials(campaign.id)
    patched = [store.list_patches(t.id) for t in trials if t.number > 0 and t.role is TrialRole.SEARCH]
    store.close()
    assert campaign.status is CampaignStatus.FINISHED
    assert "best of the search (trial" in cli.stdout or "no trial beat" in cli.stdout
    assert "confirmed on fresh seeds, reported on the test split" in cli.stdout
    assert all(t.status in (TrialStatus.SUCCEEDED, TrialStatus.FAILED) for t in trials)
    confirmations = [t for t in trials if t.role is TrialRole.CONFIRM]
    assert len(trials) - len(confirmations) == 6 and len(confirmations) in (
        2,
        4,
    )  # the baseline, and the best
    assert all(t.test_score is not None for t in confirmations if t.is_scored)
    assert all(attempts for attempts in patched)  # every idea was implemented, on the implement worker
    ran_on = {t.worker.rsplit(":", 1)[1] for t in trials if t.worker}
    assert ran_on == {str(w.pid) for w in trial_workers} and str(implementer.pid) not in ran_on
    artifacts = S3Artifacts("trials", "cluster", s3_endpoint)
    for trial in trials:
        if trial.status is TrialStatus.SUCCEEDED:
            assert read_bundle(artifacts.get(bundle_key(trial.code_hash))) is not None


@pytest.mark.timeout(240)
def test_a_second_controller_takes_over_a_killed_one_without_duplicate_children(
    cluster: Cluster, postgres_url: str
) -> None:
    store = open_store(postgres_url)
    campaign = distributed_campaign(store, "tiny_slow", trials=5, concurrency=2)
    for _ in range(2):
        cluster.start_worker("--queues", "cpu,implement")
    controllers = [cluster.start("controller"), cluster.start("controller")]
    cluster.wait_until(lambda: store.get_campaign(campaign.id).controller != "", 30, "a controller taking it")
    holder = store.get_campaign(campaign.id).controller
    [first] = [c for c in controllers if holder.endswith(f":{c.pid}")]  # only one holds the lease
    [second] = [c for c in controllers if c is not first]
    cluster.wait_until(
        lambda: any(t.status is TrialStatus.SUCCEEDED for t in store.list_trials(campaign.id)),
        60,
        "a first trial finishing",
    )
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    cluster.wait_until(
        lambda: store.get_campaign(campaign.id).status is CampaignStatus.FINISHED,
        150,
        "the campaign finishing",
    )
    trials = store.list_trials(campaign.id)
    ideas = [i for i in store.list_ideas(campaign.id) if i.duplicate_of is None]
    after = store.get_campaign(campaign.id)
    store.close()
    firsts = [t for t in trials if t.retry_of is None]
    assert len(firsts) == len(ideas) == 5  # one trial per idea, no idea proposed twice over
    assert sum(t.status in (TrialStatus.SUCCEEDED, TrialStatus.FAILED) for t in trials) == 5
    assert after.controller in ("", f"{after.controller.split(':')[0]}:{second.pid}")
    assert f"took campaign {campaign.name}" in cluster.log_of[second.pid].read_text()


def test_an_idea_queued_for_a_campaign_paused_since_waits_unimplemented(store: SqlStore) -> None:
    campaign = create_campaign(
        store, ENV, preset=None, strategy="evolve", trials=3, concurrency=1, seed=0, name=None, goal=""
    )
    baseline = pending_trial_in(store, campaign)
    diff = (ENV.root / "catalog" / "move_x.diff").read_text()
    idea = store.add_idea(
        campaign.id, hypothesis="move x", origin=IdeaOrigin.USER, parent_trial_ids=(baseline.id,), diff=diff
    )
    implement = functools.partial(
        implement_queued,
        store,
        idea.id,
        environment_named=lambda _: ENV,
        implementer_for=lambda _c, env: DiffImplementer(env, env.read_editable()),
    )
    store.set_campaign_status(campaign.id, CampaignStatus.STOPPED)
    assert implement() is None and store.first_trial_of(idea.id) is None
    store.set_campaign_status(campaign.id, CampaignStatus.RUNNING)
    trial = implement()
    assert trial is not None and trial.status is TrialStatus.PENDING and "x = 2.0" in trial.code_diff
    assert implement() is None  # a redelivered task adds nothing
