"""The adversarial suite: hostile trials run as one campaign on PostgreSQL through the real runner and
sandbox, each with the outcome it must get, then checks that the host, the database, the broker, the
other trials and the artifact store are untouched and that the campaign went on to its end. Benign
patches run in the same campaign and must pass untouched. The attempts are in tests/adversarial.py."""

from __future__ import annotations

import os
import random
import secrets
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from adversarial import ARCHIVE, BENIGN, HONEST, HOSTILE, Attempt
from conftest import POSTGRES_ADMIN_URL, new_postgres_database
from sqlalchemy import create_engine, inspect

from autoresearch.adapters.artifacts import LocalArtifacts
from autoresearch.adapters.db import open_store
from autoresearch.adapters.sandbox import make_sandbox
from autoresearch.domain.diffs import make_diff
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import CampaignStatus, FailureLabel, IdeaOrigin, Trial, TrialStatus
from autoresearch.environment import Environment, load_environment
from autoresearch.services.campaign import CampaignController, create_campaign
from autoresearch.services.proposer import Proposal
from autoresearch.services.runner import TrialRunner, prepare_data
from autoresearch.settings import Settings, bundled_path
from autoresearch.testing import ENVIRONMENTS_DIR

TINY = load_environment(ENVIRONMENTS_DIR / "tiny")
NANOGPT = load_environment(bundled_path("environments") / "nanogpt")
pytestmark = pytest.mark.postgres


class ScriptedProposer:
    """Proposes each attempt once, on the baseline, as a person's patch would be."""

    def __init__(self, env: Environment, attempts: Mapping[str, str]) -> None:
        baseline = env.read_editable()
        self.pending = [
            Proposal(
                name,
                IdeaOrigin.USER,
                make_diff(baseline, baseline | {"train.py": body}),
                against_baseline=True,
            )
            for name, body in attempts.items()
        ]

    def propose(
        self,
        parent: Trial,
        parent_code: Mapping[str, str],
        lineage: Lineage,
        rng: random.Random,
        surface: str | None = None,
    ) -> Proposal | None:
        return self.pending.pop(0) if self.pending else None


@dataclass
class Run:
    settings: Settings
    statuses: list[CampaignStatus]
    trials: dict[str, Trial]  # by attempt name
    logs: dict[str, str]  # each trial's whole train.log and evaluate.log
    host: dict[Path, str]  # host files and what they must still hold
    neighbour: Path  # another trial's folder
    redis_key: str
    pg_table: str


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    host = Path(f"/var/tmp/autoresearch-adversarial-{os.getpid()}")  # outside /tmp and the data folder
    host.mkdir(exist_ok=True)
    canary, victim = host / "canary.txt", host / "victim.txt"
    files = {canary: f"CANARY-{secrets.token_hex(8)}\n", victim: "the host's file, as it was\n"}
    for path, text in files.items():
        path.write_text(text)
    abstract = f"autoresearch-adversarial-{secrets.token_hex(4)}"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("\0" + abstract)
    listener.listen()
    os.environ["AUTORESEARCH_ADVERSARIAL_SECRET"] = "hunter2"
    data_dir = tmp_path_factory.mktemp("adversarial") / "data"
    settings = Settings(
        data_dir=data_dir,
        trial_tmp_mb=16,
        trial_processes=64,
        log_cap_bytes=200_000,
        artifacts_url=str(data_dir / "artifacts"),
    )
    values = {
        "canary": str(canary),
        "victim": str(victim),
        "data_dir": str(data_dir),
        "env_root": str(TINY.root),
        "abstract": abstract,
        "redis_key": f"autoresearch-adversarial-{secrets.token_hex(4)}",
        "pg_table": f"adversarial_{secrets.token_hex(4)}",
    }
    try:
        with new_postgres_database() as url:
            store = open_store(url)
            statuses, trials, logs = [], {}, {}
            for env, preset, attempts in (
                (TINY, "hostile", [*HOSTILE, *BENIGN]),
                (NANOGPT, "smoke", ARCHIVE),
            ):
                campaign = create_campaign(
                    store,
                    env,
                    preset=preset,
                    strategy="best-of-n",
                    trials=1 + len(attempts),
                    concurrency=2,
                    seed=0,
                    name=None,
                    goal="",
                )
                folder = settings.trials_dir / str(campaign.id)
                values["neighbour"] = str(folder / "00000")
                scripts = {a.name: _fill(a.body, values) for a in attempts}
                runner = TrialRunner(
                    env,
                    preset,
                    settings,
                    make_sandbox(settings.sandbox),
                    prepare_data(env, settings),
                    LocalArtifacts(data_dir / "artifacts"),
                )
                outcome = CampaignController(
                    store, campaign, env, runner, ScriptedProposer(env, scripts)
                ).run()
                statuses.append(outcome.campaign.status)
                by_idea = {i.id: i.hypothesis for i in store.list_ideas(campaign.id)}
                for trial in store.list_trials(campaign.id):
                    name = by_idea[trial.idea_id] if trial.number else f"{env.name} baseline"
                    trials[name] = trial
                    trial_folder = folder / f"{trial.number:05d}"
                    logs[name] = _read(trial_folder / "train.log") + _read(trial_folder / "evaluate.log")
            yield Run(
                settings,
                statuses,
                trials,
                logs,
                files,
                settings.trials_dir / "1" / "00000",
                values["redis_key"],
                values["pg_table"],
            )
            store.close()
    finally:
        listener.close()
        del os.environ["AUTORESEARCH_ADVERSARIAL_SECRET"]
        for path in files:
            path.unlink(missing_ok=True)
        host.rmdir()


def _fill(body: str, values: Mapping[str, str]) -> str:
    """The script with each {name} of `values` filled in (scripts hold other braces: dicts, f-strings)."""
    for name, value in values.items():
        body = body.replace("{" + name + "}", value)
    return body


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _check(run: Run, attempt: Attempt) -> None:
    trial = run.trials[attempt.name]
    log = run.logs[attempt.name]
    assert "BREACH" not in log, log[-2000:]
    shown = (trial.reason, log[-1500:])
    if isinstance(attempt.outcome, FailureLabel):
        assert (trial.status, trial.label) == (TrialStatus.FAILED, attempt.outcome), shown
        assert attempt.reason in trial.reason
    elif isinstance(attempt.outcome, TrialStatus):
        assert trial.status is attempt.outcome, shown
    else:
        assert (trial.status, trial.score) == (TrialStatus.SUCCEEDED, attempt.outcome), shown


HOSTILE_ALL = [*HOSTILE, *ARCHIVE]


@pytest.mark.parametrize("attempt", HOSTILE_ALL, ids=[a.name for a in HOSTILE_ALL])
def test_a_hostile_trial_gets_its_outcome_and_nothing_more(run: Run, attempt: Attempt) -> None:
    _check(run, attempt)


@pytest.mark.parametrize("attempt", BENIGN, ids=[a.name for a in BENIGN])
def test_a_benign_trial_passes_untouched(run: Run, attempt: Attempt) -> None:
    _check(run, attempt)


def test_the_campaigns_went_on_to_their_end_with_every_trial_recorded(run: Run) -> None:
    assert run.statuses == [CampaignStatus.FINISHED, CampaignStatus.FINISHED]
    names = {a.name for a in (*HOSTILE_ALL, *BENIGN)} | {"tiny baseline", "nanogpt baseline"}
    assert set(run.trials) == names
    assert run.trials["tiny baseline"].score == HONEST
    assert run.trials["nanogpt baseline"].status is TrialStatus.SUCCEEDED


def test_the_host_the_other_trials_and_the_artifact_store_are_untouched(run: Run) -> None:
    for path, text in run.host.items():
        assert path.read_text() == text, path
    assert (run.neighbour / "out" / "result.txt").read_text().split() == ["0.0", "0.0", "10"]
    secrets_ = [text.strip() for text in run.host.values() if text.startswith("CANARY")] + ["hunter2"]
    stored = list((run.settings.data_dir / "artifacts").rglob("*"))
    assert stored and not any(p.is_symlink() for p in stored)
    for path in stored:
        if path.is_file():
            content = path.read_bytes()
            assert not any(s.encode() in content for s in secrets_), path
    for log in run.logs.values():
        assert not any(s in log for s in secrets_)


def test_no_process_of_a_trial_outlives_it(run: Run) -> None:
    marker = str(run.settings.data_dir).encode()  # every trial's command line names its folder
    survivors = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                survivors.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    assert not survivors


def test_the_database_and_the_broker_are_untouched(run: Run) -> None:
    import redis

    assert redis.Redis(host="127.0.0.1", port=6379).get(run.redis_key) is None
    engine = create_engine(POSTGRES_ADMIN_URL)
    try:
        assert run.pg_table not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
