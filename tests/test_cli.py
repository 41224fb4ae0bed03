"""The `autoresearch` command as a user runs it: real processes, real databases."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from autoresearch.adapters.db import open_store
from autoresearch.domain.diffs import make_diff
from autoresearch.domain.model import FailureLabel, Scope, Trial, TrialRole, TrialStatus
from autoresearch.services.auth import authenticate
from autoresearch.testing import ENVIRONMENTS_DIR

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli_env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    keys = ("AUTORESEARCH_", "OPENAI_", "ANTHROPIC_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(keys)}
    env |= {
        "AUTORESEARCH_DATA_DIR": str(tmp_path / "data"),
        "AUTORESEARCH_DATABASE_URL": sqlite_url,
        "AUTORESEARCH_ENVIRONMENTS_PATH": str(ENVIRONMENTS_DIR),
        # Campaigns here confirm and race nothing unless a test asks: test_confirmation covers both.
        "AUTORESEARCH_CONFIRM_TOP": "0",
        "AUTORESEARCH_CONFIRM_SEEDS": "0",
        "AUTORESEARCH_RACE": "0",
        "COLUMNS": "200",
    }
    return env


def _argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "autoresearch", *args]


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Cli:
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(_argv(*args), env=cli_env, capture_output=True, text=True, timeout=600)
        if check and done.returncode != 0:
            raise AssertionError(f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
        return done

    return run


def test_a_tiny_campaign_improves_on_its_baseline_and_lists_as_json(cli: Cli) -> None:
    done = cli("run", "tiny", "--trials", "10", "--concurrency", "2", "--name", "t1")
    assert "best of the search (trial" in done.stdout
    rows = json.loads(cli("campaigns", "--json").stdout)
    assert [r["name"] for r in rows] == ["t1"]
    assert rows[0]["trials_done"] == 10, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert rows[0]["best_score"] < rows[0]["baseline_score"]
    report = json.loads(cli("show", "t1", "--json").stdout)
    assert report["best_diff"].startswith("--- a/recipe.py")
    assert len(report["lineage"]) == 10
    best = report["leaderboard"][0]
    trial = json.loads(cli("trial", f"t1:{best['number']}", "--json").stdout)
    assert trial["trial"]["score"] == best["score"] and trial["patches"][0]["applied"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "nope"), "no environment named 'nope'"),
        (("run", "tiny", "--preset", "huge"), "has no preset 'huge'"),
        (("run", "tiny", "--strategy", "magic"), "unknown strategy 'magic'"),
        (("run", "tiny", "--trials", "0"), "--trials must be at least 1"),
        (("run", "grpo", "--preset", "gpu"), "presets.gpu.inputs.model is not set"),
        (("show", "missing"), "no campaign"),
        (("trial", "abc"), "expected a trial id or CAMPAIGN:NUMBER"),
        (("try", "tiny", "--patch", "/nonexistent.diff"), "cannot read"),
        (("run", "tiny", "--implementer", "openai:gpt-5"), "--implementer need an LLM proposer"),
        (("run", "tiny", "--proposer", "gpt-5"), "model 'gpt-5' is not one of"),
        (("run", "tiny", "--proposer", "openai:gpt-5"), "OPENAI_API_KEY"),
        (("run", "tiny", "--proposer", "stand-in", "--role-budget", "critic:dollars=1"), "ROLE one of"),
        (("run", "tiny", "--proposer", "stand-in", "--ideas-per-call", "0"), "--ideas-per-call"),
        (("worker", "--queues", "cpu,tpu"), "choose from implement, cpu, gpu"),
        (("run", "tiny", "--gpus", ","), "name at least one GPU"),
    ],
)
def test_a_user_mistake_is_one_line_and_exit_1(cli: Cli, args: tuple[str, ...], message: str) -> None:
    done = cli(*args, check=False)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_trial_interpreter_that_does_not_run_is_reported_before_any_campaign_is_created(
    cli: Cli, cli_env: dict[str, str]
) -> None:
    cli_env["AUTORESEARCH_PYTHON"] = "/nonexistent/python"
    done = cli("run", "tiny", "--trials", "2", check=False)
    assert done.returncode == 1
    assert "the trial interpreter /nonexistent/python does not run" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert json.loads(cli("campaigns", "--json").stdout) == []


def test_a_missing_api_key_is_reported_before_any_campaign_is_created(cli: Cli) -> None:
    assert (
        "ANTHROPIC_API_KEY"
        in cli("run", "tiny", "--proposer", "anthropic:claude-sonnet-4-5", check=False).stderr
    )
    assert json.loads(cli("campaigns", "--json").stdout) == []


def test_an_llm_campaign_resumes_with_the_models_and_limits_it_was_created_with(cli: Cli) -> None:
    cli("run", "tiny", "--trials", "3", "--proposer", "stand-in", "--name", "llm", "--max-tokens", "900000")
    out = cli("resume", "llm", "--trials", "5").stdout
    assert "LLM usage" in out
    report = json.loads(cli("show", "llm", "--json").stdout)
    assert sum(report["counts"].values()) == 5
    assert report["llm"]["budget"] == {"tokens": 900000, "dollars": None}
    assert report["llm"]["roles"]["proposer"]["model"] == "stand-in"
    assert report["llm"]["roles"]["implementer"]["calls"] >= 4


def test_an_llm_budget_cannot_be_given_to_a_catalog_campaign_on_resume(cli: Cli) -> None:
    cli("run", "tiny", "--trials", "2", "--name", "plain")
    done = cli("resume", "plain", "--max-dollars", "1", check=False)
    assert done.returncode == 1 and "uses no LLM" in done.stderr


def test_gpu_placement_from_the_command_line(cli: Cli) -> None:
    cli(
        "run",
        "tiny",
        "--preset",
        "quarter_gpu",
        "--trials",
        "6",
        "--concurrency",
        "4",
        "--gpus",
        "0",
        "--slots-per-gpu",
        "4",
        "--name",
        "gpu",
    )
    report = json.loads(cli("show", "gpu", "--json").stdout)
    assert sum(report["counts"].values()) == 6 and "interrupted" not in report["counts"]


def test_a_bad_database_url_is_one_line(cli_env: dict[str, str]) -> None:
    env = cli_env | {"AUTORESEARCH_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    done = subprocess.run(_argv("campaigns"), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "127.0.0.1:1" in done.stderr


def test_try_runs_a_users_patch_beside_the_baseline(cli: Cli, tmp_path: Path) -> None:
    patch = tmp_path / "mine.diff"
    patch.write_text((ENVIRONMENTS_DIR / "tiny" / "catalog" / "move_x.diff").read_text())
    cli("try", "tiny", "--patch", str(patch), "--name", "mine")
    report = json.loads(cli("show", "mine", "--json").stdout)
    assert [row["score"] for row in report["leaderboard"]] == [3.0, 11.0]  # x=2: (2-3)^2 + (0+1)^2 + 1


def _wait_for(predicate: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.2)


def _trials(url: str, name: str) -> list[Trial]:
    """The campaign's trials; none while its record (or the database) is not there yet."""
    try:
        store = open_store(url)
        try:
            return store.list_trials(store.get_campaign(name).id)
        finally:
            store.close()
    except Exception:
        return []


def _one_finished_and_one_running(url: str, name: str) -> bool:
    statuses = [t.status for t in _trials(url, name)]
    return any(status.is_terminal for status in statuses) and TrialStatus.RUNNING in statuses


def _phase_frozen(pid: int) -> bool:
    """Stop every trial phase the campaign process `pid` has started (each leads a process group of its
    own), so that a trial seen running is still running when the signal lands: True when one was.
    A child still between fork and exec is left alone: stopped there, it would hold up the Popen that
    started it, and with it the campaign's shutdown."""
    try:
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
        ours = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    frozen = False
    for child in children:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/cmdline").read_bytes() != ours:  # it has exec'd its phase
                os.killpg(child, signal.SIGSTOP)
                frozen = _stopped(child) or frozen
    return frozen


def _stopped(pid: int) -> bool:
    """Whether the process is stopped now. One that had already exited (a zombie, not yet reaped) takes no
    signal: its trial finishes as the signal to the campaign lands, and there is nothing to cancel."""
    for _ in range(100):  # SIGSTOP is delivered asynchronously: wait for the state to show it
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        if state in "Tt":
            return True
        if state in "ZX":
            return False
        time.sleep(0.01)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["kill -9", "ctrl-c", "kill"])
def test_a_stopped_campaign_resumes_without_losing_or_rerunning_a_finished_trial(
    cli: Cli, cli_env: dict[str, str], sqlite_url: str, stop: str
) -> None:
    proc = subprocess.Popen(
        _argv("run", "nanogpt", "--preset", "smoke", "--trials", "6", "--concurrency", "2", "--name", "k"),
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: _one_finished_and_one_running(sqlite_url, "k") and _phase_frozen(proc.pid), 300)
    proc.send_signal({"kill -9": signal.SIGKILL, "ctrl-c": signal.SIGINT, "kill": signal.SIGTERM}[stop])
    proc.wait(timeout=60)
    before = {t.id: (str(t.status), t.score) for t in _trials(sqlite_url, "k") if t.status.is_terminal}
    store = open_store(sqlite_url)
    campaign = store.get_campaign("k")
    if stop != "kill -9":
        labels = {t.label for t in store.list_trials(campaign.id) if t.status is TrialStatus.INTERRUPTED}
        assert labels == {FailureLabel.CANCELLED}
        assert str(campaign.status) == "stopped"
    store.close()

    cli("resume", "k")
    store = open_store(sqlite_url)
    trials = store.list_trials(campaign.id)
    store.close()
    after = {t.id: (str(t.status), t.score) for t in trials}
    assert all(after[trial_id] == outcome for trial_id, outcome in before.items()), "a finished trial changed"
    counted = [t for t in trials if t.status in (TrialStatus.SUCCEEDED, TrialStatus.FAILED)]
    assert len(counted) == 6
    runs_per_idea = Counter(t.idea_id for t in counted)
    assert max(runs_per_idea.values()) == 1, "an idea was run to completion twice"
    retried = [t for t in trials if t.retry_of is not None]
    interrupted = [t for t in trials if t.status is TrialStatus.INTERRUPTED]
    assert {t.retry_of for t in retried} == {t.id for t in interrupted}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_nanogpt_smoke_campaign_scores_or_labels_every_trial_and_confirms_its_best(
    cli: Cli, cli_env: dict[str, str], backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    cli_env["AUTORESEARCH_DATABASE_URL"] = url
    confirm = ("--confirm-top", "1", "--confirm-seeds", "2", "--race", "1")
    done = cli(
        "run",
        "nanogpt",
        "--preset",
        "smoke",
        "--trials",
        "8",
        "--concurrency",
        "2",
        *confirm,
        "--name",
        "smoke",
    )
    assert "confirmed on fresh seeds, reported on the test split" in done.stdout
    assert "beyond noise" in done.stdout  # the verdict, whichever way it went
    rows = json.loads(cli("campaigns", "--json").stdout)
    assert rows[0]["trials_done"] == 8
    store = open_store(url)
    trials = store.list_trials(store.get_campaign("smoke").id)
    store.close()
    spent = [t for t in trials if t.role is not TrialRole.CONFIRM]
    assert len(spent) == 8
    for trial in trials:
        assert (trial.status is TrialStatus.SUCCEEDED and trial.score is not None) or trial.label is not None
    assert trials[0].score is not None and 3.5 < trials[0].score < 5.0  # the baseline learned something
    steps = [point["step"] for point in trials[0].curve]  # its training curve, from its progress lines
    assert len(steps) >= 10 and steps == sorted(steps) and all("loss" in p for p in trials[0].curve)
    confirmations = [t for t in trials if t.role is TrialRole.CONFIRM]
    assert len(confirmations) == 4 and {t.seed for t in confirmations} == {1, 2}
    assert all(t.test_score is not None and t.test_score != t.score for t in confirmations if t.is_scored)
    assert all(t.test_score is None for t in spent)  # the search never evaluates the test split
    record = trials[0].record
    assert record["environment"] == "nanogpt" and record["seed"] == 0 and record["preset"] == "smoke"
    assert len(record["environment_digest"]) == 64 and record["code_hash"] == trials[0].code_hash
    assert record["packages"]["torch"] and record["python"] and record["sandbox"] == "bwrap"

    report = json.loads(cli("show", "smoke", "--json").stdout)["confirmed"]
    assert report["split"] == "test" and report["pending"] == 0
    assert report["baseline"]["test"]["n"] == 2 and report["baseline"]["val"]["n"] == 2
    shown = cli("show", "smoke").stdout
    assert "confirmed" in shown and "search score" in shown

    again = json.loads(cli("reproduce", "smoke:0", "--seeds", "2", "--json").stdout)
    assert again["recorded"] == trials[0].score and again["runs"][0]["seed"] == 0
    assert again["reproduced"] is True and abs(again["difference"]) <= (again["noise_floor"] or 0.0)
    assert again["changed"] == {}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("model", ["stand-in", "stand-in:anthropic"])
def test_an_llm_campaign_over_real_http_shows_ideas_attempts_revisions_and_notes(
    cli: Cli, model: str
) -> None:
    """nanoGPT's smoke preset with every role played by the stand-in server, through each SDK."""
    cli(
        "run",
        "nanogpt",
        "--preset",
        "smoke",
        "--trials",
        "5",
        "--concurrency",
        "2",
        "--proposer",
        model,
        "--name",
        "llm",
    )
    report = json.loads(cli("show", "llm", "--json").stdout)
    assert sum(report["counts"].values()) == 5
    assert set(report["llm"]["roles"]) == {"proposer", "implementer", "analyst"}
    assert report["llm"]["total"]["tokens"] > 0 and report["llm"]["total"]["cached_tokens"] > 0
    revised = None
    for number in range(1, 5):
        trial = json.loads(cli("trial", f"llm:{number}", "--json").stdout)
        assert trial["idea"]["origin"] == "llm" and trial["idea"]["llm_call_id"] is not None
        assert trial["trial"]["analysis"], "every finished trial gets an analyst note"
        attempts = trial["patches"]
        if len(attempts) > 1 and not attempts[0]["applied"] and attempts[-1]["applied"]:
            revised = trial
    assert revised is not None, "the stand-in's stale first patch was never revised"
    roles = [c["role"] for c in revised["llm_calls"]]
    assert roles.count("implementer") == len(revised["patches"]) and roles[0] == "proposer"
    assert roles[-1] == "analyst"
    shown = cli("trial", f"llm:{revised['trial']['number']}").stdout
    assert "patch attempt 2" in shown and "analyst:" in shown and "implementer@v1" in shown
    assert report["llm"]["failed_calls"] >= 1  # the stand-in's malformed first proposal, re-asked


def test_an_api_token_is_shown_once_stored_as_a_hash_and_revocable(cli: Cli, sqlite_url: str) -> None:
    created = cli("token", "create", "--scope", "write", "--name", "ci")
    secret = created.stdout.strip()
    assert secret.startswith("ar_") and "not shown again" in created.stderr
    store = open_store(sqlite_url)
    [token] = store.list_tokens()
    assert authenticate(store, secret) == token and token.scope is Scope.WRITE
    listed = cli("token", "list").stdout + cli("token", "list", "--json").stdout
    assert secret not in listed and token.prefix in listed
    cli("token", "revoke", str(token.id))
    assert authenticate(store, secret) is None
    store.close()
    assert "no API token with id 99" in cli("token", "revoke", "99", check=False).stderr
    assert cli("token", "create", "--scope", "root", check=False).returncode == 2  # not a scope


def _shipped_copy(tmp_path: Path, name: str, technique: tuple[str, str], edits: dict[str, str]) -> Path:
    """A copy of a shipped environment whose catalog holds one technique, train.py with `old` replaced by
    `new` (so a campaign's second trial runs it), with `edits` made to its environment.toml; the folder
    holding the copy."""
    envs = tmp_path / "envs"
    root = envs / name
    shutil.copytree(Path(__file__).resolve().parents[1] / "environments" / name, root)
    toml = (root / "environment.toml").read_text()
    for old, new in edits.items():
        assert old in toml, old
        toml = toml.replace(old, new)
    (root / "environment.toml").write_text(toml)
    train = (root / "train.py").read_text()
    assert technique[0] in train, technique[0]
    diff = make_diff({"train.py": train}, {"train.py": train.replace(*technique, 1)})
    shutil.rmtree(root / "catalog")
    (root / "catalog").mkdir()
    (root / "catalog" / "only.diff").write_text(diff)
    (root / "catalog.toml").write_text(
        '[[technique]]\nkey = "only"\nsurface = "hyperparameters"\nhypothesis = "the one"\ndiff = "catalog/only.diff"\n'
    )
    return envs


def _labels(url: str, campaign: str) -> list[tuple[float | None, FailureLabel | None, str]]:
    store = open_store(url)
    trials = store.list_trials(store.get_campaign(campaign).id)
    store.close()
    return [(t.score, t.label, t.reason) for t in trials]


@pytest.mark.slow
def test_a_speedrun_under_its_accuracy_target_is_gate_miss_and_the_baseline_scores_its_time(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cli_env["AUTORESEARCH_ENVIRONMENTS_PATH"] = str(
        _shipped_copy(tmp_path, "digits", ("epochs = 30", "epochs = 1"), {})
    )
    cli("run", "digits", "--trials", "2", "--concurrency", "2", "--name", "race")
    (baseline, no_label, _), (missed, label, reason) = _labels(cli_env["AUTORESEARCH_DATABASE_URL"], "race")
    assert no_label is None and baseline is not None and 1.0 < baseline < 300  # the runner's clock, in s
    assert missed is None and label is FailureLabel.GATE_MISS
    assert "below the target 0.93" in reason


@pytest.mark.slow
def test_a_golf_model_over_the_byte_cap_is_size_cap(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    short = {
        "budget = { steps = 600, wall_clock_s = 900, max_bytes = 1_000_000 }": "budget = { steps = 20, wall_clock_s = 300, max_bytes = 1_000_000 }"
    }
    cli_env["AUTORESEARCH_ENVIRONMENTS_PATH"] = str(
        _shipped_copy(tmp_path, "nanogpt", ("width_scale = 1.0", "width_scale = 2.0"), short)
    )
    cli("run", "nanogpt", "--preset", "golf", "--trials", "2", "--concurrency", "2", "--name", "golf")
    (baseline, no_label, _), (over, label, reason) = _labels(cli_env["AUTORESEARCH_DATABASE_URL"], "golf")
    assert no_label is None and baseline is not None
    assert over is None and label is FailureLabel.SIZE_CAP
    assert reason.endswith("bytes, over the cap of 1,000,000")
    assert re.search(r"artifact_bytes=\d{7,}\b", cli("trial", "golf:1").stdout)  # a byte count in full


def test_env_new_makes_an_environment_that_env_check_passes_and_envs_lists(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    made = cli("env", "new", "my-task", "--dir", str(tmp_path)).stdout
    assert f"made {tmp_path / 'my-task'}" in made
    assert "my-task" in [row["name"] for row in json.loads(cli("envs", "--json").stdout)]
    report = json.loads(cli("env", "check", "my-task", "--json").stdout)
    assert report["problems"] == []
    assert [run["outcome"] for run in report["runs"]] == ["succeeded"] * 3
    assert report["spread"] > 0  # the template's seeds start from different points
    first, again = report["evaluator_repeat"]
    assert first == again and first["val_mse"] == report["runs"][0]["score"]
    assert "evaluate.py" in report["protected"] and report["techniques"] == 1


def test_env_check_names_each_problem_it_finds_and_exits_1(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cli("env", "new", "leaky", "--dir", str(tmp_path))
    root = tmp_path / "leaky"
    evaluate = (root / "evaluate.py").read_text()
    (root / "evaluate.py").write_text(
        evaluate.replace(
            'print(f"val_mse: {mse:.8f}")', 'import random; print(f"val_mse: {mse + random.random():.8f}")'
        )
    )
    evaluate = (root / "evaluate.py").read_text()
    (root / "evaluate.py").write_text(  # and it unpickles a file training writes
        evaluate.replace(
            "    points = [",
            "    import pickle; pickle.loads((args.out / 'model.pkl').read_bytes())\n    points = [",
        )
    )
    train = (root / "train.py").read_text()
    (root / "train.py").write_text(
        train.replace(
            '    print("---")',
            "    import pickle; (args.out / 'model.pkl').write_bytes(pickle.dumps([w, b]))\n    print(\"---\")",
        )
    )
    toml = (root / "environment.toml").read_text()
    (root / "environment.toml").write_text(toml.replace('"README.md"]\n#', '"README.md", "data/*"]\n#'))
    cli_env["AUTORESEARCH_SANDBOX"] = "none"

    done = cli("env", "check", "leaky", "--seeds", "1", check=False)
    assert done.returncode == 1
    problems = " ".join(done.stderr.split())
    assert "files.protected: 'data/*' matches no file" in problems
    assert "the evaluator gave one checkpoint val_mse" in problems
    assert f"trial code can read {root / 'evaluate.py'}" in problems
    assert "trials run without a sandbox" in problems
    assert (
        "the evaluator runs code from what training left: a pickle planted in out/model.pkl ran" in problems
    )


def test_env_add_registers_a_folder_and_refuses_a_name_already_taken(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cli("env", "new", "mine", "--dir", str(tmp_path / "a"))
    shutil.copytree(tmp_path / "a" / "mine", tmp_path / "b" / "mine")
    refused = cli("env", "add", str(tmp_path / "b" / "mine"), check=False)
    assert refused.returncode != 0 and "already known at" in refused.stderr
    shutil.copytree(ENVIRONMENTS_DIR / "tiny", tmp_path / "c" / "tiny")
    refused = cli("env", "add", str(tmp_path / "c" / "tiny"), check=False)  # tiny is on the search path
    assert "already known at" in refused.stderr
    refused = cli("env", "new", "mine", "--dir", str(tmp_path / "d"), check=False)
    assert "already known at" in refused.stderr and not (tmp_path / "d").exists()  # nothing left behind
    cli_env["AUTORESEARCH_ENVIRONMENTS_PATH"] = ""
    assert "registered tiny" in cli("env", "add", str(tmp_path / "c" / "tiny")).stdout
    assert "registered tiny" in cli("env", "add", str(tmp_path / "c" / "tiny")).stdout  # twice: no harm
    registry = Path(cli_env["AUTORESEARCH_DATA_DIR"]) / "environments.txt"
    assert registry.read_text().splitlines() == [str(tmp_path / "a" / "mine"), str(tmp_path / "c" / "tiny")]
    assert "no environment.toml" in cli("env", "add", str(tmp_path), check=False).stderr


def _without_util_linux(cli_env: dict[str, str]) -> None:
    """A PATH on which bubblewrap's helpers (prlimit, setpriv) cannot be found: no sandbox can be made."""
    cli_env["PATH"] = str(Path(sys.executable).parent)


def test_without_a_sandbox_no_campaign_starts_unless_none_is_set_on_purpose(
    cli: Cli, cli_env: dict[str, str]
) -> None:
    _without_util_linux(cli_env)
    done = cli("run", "tiny", "--trials", "2", check=False)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "trials need a sandbox and prlimit (util-linux) is not installed" in done.stderr
    assert "set AUTORESEARCH_SANDBOX=none on purpose" in done.stderr
    assert json.loads(cli("campaigns", "--json").stdout) == []
    cli_env["AUTORESEARCH_SANDBOX"] = "none"
    done = cli("run", "tiny", "--trials", "2")
    assert "warning: trials run without a sandbox (AUTORESEARCH_SANDBOX=none)" in " ".join(
        done.stderr.split()
    )
    assert json.loads(cli("campaigns", "--json").stdout)[0]["trials_done"] == 2


def test_a_worker_without_a_sandbox_refuses_to_start_and_one_set_to_none_shows_it(
    cli: Cli, cli_env: dict[str, str]
) -> None:
    _without_util_linux(cli_env)
    done = cli("worker", "--queues", "cpu", check=False)
    assert done.returncode == 1 and "trials need a sandbox" in done.stderr
    assert json.loads(cli("workers", "--json").stdout) == []
    cli_env["AUTORESEARCH_SANDBOX"] = "none"
    worker = subprocess.Popen(
        _argv("worker", "--queues", "cpu", "--name", "unsandboxed@test"),
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (found := json.loads(cli("workers", "--json").stdout)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert [w["capacity"]["sandbox"] for w in found] == ["none"]
        listed = cli("workers")
        assert "none" in listed.stdout.split()
        assert "a worker runs trials without a sandbox" in " ".join(listed.stderr.split())
    finally:
        worker.terminate()
        _, errors = worker.communicate(timeout=60)
    assert "trials run without a sandbox" in " ".join(errors.split())
