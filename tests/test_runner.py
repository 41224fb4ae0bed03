"""The runner with real subprocesses and the real sandbox, on the tiny environment."""

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autoresearch.adapters.sandbox import make_sandbox
from autoresearch.domain.diffs import make_diff
from autoresearch.domain.model import FailureLabel, TrialStatus
from autoresearch.environment import Environment, load_environment
from autoresearch.services.implementer import Preflight, apply_checked
from autoresearch.services.runner import TrialJob, TrialRunner, parse_progress, prepare_data
from autoresearch.settings import Settings
from autoresearch.testing import ENVIRONMENTS_DIR


@pytest.fixture
def env() -> Environment:
    return load_environment(ENVIRONMENTS_DIR / "tiny")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def _runner(env: Environment, settings: Settings, preset: str = "quick") -> TrialRunner:
    sandbox = make_sandbox(settings.sandbox)
    return TrialRunner(env, preset, settings, sandbox, prepare_data(env, settings))


def _run(env: Environment, settings: Settings, code: dict[str, str], preset: str = "quick"):  # type: ignore[no-untyped-def]
    return _runner(env, settings, preset).run(TrialJob(1, 1, 1, 0, code))


def _with_train(env: Environment, body: str) -> dict[str, str]:
    code = env.read_editable()
    code["train.py"] = body
    return code


def test_the_evaluator_owns_the_score_not_what_training_prints(env: Environment, settings: Settings) -> None:
    result = _run(env, settings, env.read_editable())
    assert result.status is TrialStatus.SUCCEEDED
    assert result.score == 11.0  # (0-3)^2 + (0+1)^2 + 1; train.py printed "loss: 0.0"
    assert result.metrics["params"] == 10


def test_the_runner_measures_trainings_peak_memory_whatever_training_prints(
    env: Environment, settings: Settings
) -> None:
    hold = "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1.5)"
    grow = (
        "import subprocess, sys\n"  # in a grandchild: the whole process tree counts
        f"subprocess.run([sys.executable, '-c', {hold!r}], check=True)\n"
        + env.read_editable()["train.py"]
        + "print('train_peak_rss_mb: 1')\n"
    )
    result = _run(env, settings, _with_train(env, grow))
    assert result.status is TrialStatus.SUCCEEDED
    assert 300 < result.metrics["train_peak_rss_mb"] < 450


def test_a_training_crash_is_labelled_crash_with_its_last_line(env: Environment, settings: Settings) -> None:
    result = _run(env, settings, _with_train(env, "raise RuntimeError('diverged at step 3')\n"))
    assert result.label is FailureLabel.CRASH
    assert "diverged at step 3" in result.reason
    assert "Traceback" in result.log_tail


def test_the_wall_clock_limit_kills_the_whole_process_group(
    env: Environment, settings: Settings, tmp_path: Path
) -> None:
    pid_file = settings.trials_dir / "1" / "00001" / "out" / "grandchild.pid"
    body = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result = _run(env, settings, _with_train(env, body), preset="strict")
    assert result.label is FailureLabel.TIMEOUT
    assert time.monotonic() - started < 10
    grandchild = int(pid_file.read_text())
    # Inside the sandbox the pid is namespaced; without one it is a host pid. Either way nothing survives.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive_sleepers():
        time.sleep(0.1)
    assert not _alive_sleepers(), f"a process of the trial survived (pid {grandchild})"


def _alive_sleepers() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "time.sleep(60)" in cmdline and "Popen" not in cmdline:
                found.append(proc.name)
    return found


def test_a_patch_touching_a_protected_file_is_illegal_and_never_runs(env: Environment) -> None:
    baseline = env.read_editable()
    diff = make_diff({"evaluate.py": "x\n"}, {"evaluate.py": "y\n"})
    attempt, code = apply_checked(diff, baseline, env)
    assert attempt.label is FailureLabel.ILLEGAL_EDIT and code is None
    escaping = make_diff({"../x.py": "x\n"}, {"../x.py": "y\n"})
    assert apply_checked(escaping, baseline, env)[0].label is FailureLabel.ILLEGAL_EDIT


def test_training_that_rewrites_a_protected_file_is_illegal_edit(
    env: Environment, settings: Settings
) -> None:
    body = env.read_editable()["train.py"] + "\nopen('harness.py', 'a').write('# tampered')\n"
    result = _run(env, settings, _with_train(env, body))
    assert result.label is FailureLabel.ILLEGAL_EDIT
    assert "harness.py" in result.reason


def test_a_diff_that_does_not_apply_is_patch_failed(env: Environment) -> None:
    baseline = env.read_editable()
    diff = make_diff({"recipe.py": "z = 1\n"}, {"recipe.py": "z = 2\n"})
    attempt, code = apply_checked(diff, baseline, env)
    assert attempt.label is FailureLabel.PATCH_FAILED and code is None and "does not match" in attempt.error


def test_a_model_over_the_size_cap_is_size_cap(env: Environment, settings: Settings) -> None:
    code = env.read_editable()
    code["recipe.py"] = code["recipe.py"].replace("params = 10", "params = 5000")
    result = _run(env, settings, code)
    assert result.label is FailureLabel.SIZE_CAP


def test_an_evaluator_refusal_is_gate_miss(env: Environment, settings: Settings) -> None:
    body = "import harness\nopen(harness.arg('out') + '/result.txt', 'w').write('refuse')\n"
    result = _run(env, settings, _with_train(env, body))
    assert result.label is FailureLabel.GATE_MISS


def test_logs_are_capped(env: Environment, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", log_cap_bytes=10_000)
    body = "print('x' * 1000 + '\\n' * 0, flush=True)\n" * 100 + "print('the end')\nraise SystemExit(1)\n"
    result = _run(env, settings, _with_train(env, body))
    log = (settings.trials_dir / "1" / "00001" / "train.log").read_text()
    assert len(log) < 20_000 and "bytes not kept" in log and log.rstrip().endswith("the end")
    assert "the end" in result.reason


def test_trial_code_cannot_write_outside_its_folder_read_private_files_or_reach_the_network(
    env: Environment, settings: Settings
) -> None:
    secret = env.root / "secret.txt"
    escape = Path("/var/tmp") / f"ar-escape-{os.getpid()}.txt"  # a host folder neither hidden nor bound
    body = (
        "import socket, os\n"
        f"try:\n    open({str(secret)!r}).read(); print('LEAK secret')\nexcept OSError: print('no secret')\n"
        f"try:\n    open({str(escape)!r}, 'w'); print('LEAK write')\nexcept OSError: print('no write')\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2); print('LEAK net')\nexcept OSError: print('no net')\n"
        "raise SystemExit(1)\n"
    )
    result = _run(env, settings, _with_train(env, body))
    assert "LEAK" not in result.log_tail
    assert {"no secret", "no write", "no net"} <= set(result.log_tail.split("\n"))
    assert not escape.exists()


def test_trial_code_cannot_read_the_service_users_home_folder(
    env: Environment, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path(tempfile.mkdtemp(dir="/var/tmp"))  # outside /tmp, which is hidden anyway
    try:
        (home / ".aws").mkdir()
        (home / ".aws" / "credentials").write_text("aws_secret_access_key = hunter2\n")
        monkeypatch.setenv("HOME", str(home))
        body = (
            f"try:\n    print(open({str(home / '.aws' / 'credentials')!r}).read())\n"
            "except OSError as exc:\n    print('refused', type(exc).__name__)\n"
            "raise SystemExit(1)\n"
        )
        result = _run(env, settings, _with_train(env, body))
    finally:
        shutil.rmtree(home)
    assert "hunter2" not in result.log_tail and "refused FileNotFoundError" in result.log_tail


def test_the_child_environment_carries_no_secrets(env: Environment, settings: Settings) -> None:
    os.environ["AUTORESEARCH_TEST_SECRET"] = "hunter2"
    try:
        body = (
            "import os\nprint(sorted(os.environ))\nprint('hunter2' in str(os.environ))\nraise SystemExit(1)\n"
        )
        result = _run(env, settings, _with_train(env, body))
    finally:
        del os.environ["AUTORESEARCH_TEST_SECRET"]
    assert "False" in result.log_tail and "AUTORESEARCH" not in result.log_tail


def test_a_score_that_is_not_a_number_is_gate_miss(env: Environment, settings: Settings) -> None:
    code = env.read_editable()
    code["recipe.py"] = code["recipe.py"].replace("x = 0.0", "x = float('nan')")
    result = _run(env, settings, code)
    assert result.label is FailureLabel.GATE_MISS and "finite" in result.reason


def test_an_environment_changed_on_disk_is_the_services_problem_not_the_candidates(
    env: Environment, settings: Settings, tmp_path: Path
) -> None:
    from autoresearch.errors import ConfigError

    copy = tmp_path / "tiny"
    shutil.copytree(env.root, copy)
    moved = load_environment(copy)
    runner = _runner(moved, settings)
    assert moved.protected_digests  # hashed when the campaign starts
    (copy / "harness.py").write_text("# edited by someone mid-campaign\n")
    with pytest.raises(ConfigError, match="changed on disk"):
        runner.run(TrialJob(1, 1, 1, 0, moved.read_editable()))


def test_preflight_trains_a_candidate_in_the_sandbox_and_returns_its_failure(
    env: Environment, settings: Settings
) -> None:
    preflight = Preflight(_runner(env, settings))
    assert preflight.check(env.read_editable(), ("recipe.py",), 1, "ok") is None
    broken = _with_train(env, "import recipe\nraise RuntimeError('nan loss at step 2')\n")
    label, message = preflight.check(broken, ("train.py",), 1, "crash") or (None, "")
    assert label is FailureLabel.CRASH and "nan loss at step 2" in message and "Traceback" in message
    assert (settings.trials_dir / "1" / "preflight" / "crash" / "train.log").is_file()


def test_preflight_refuses_code_that_does_not_compile_without_running_it(
    env: Environment, settings: Settings
) -> None:
    code = _with_train(env, "def f(:\n")
    assert Preflight(None).check(code, ("train.py",), 1, "syntax") == (
        FailureLabel.CRASH,
        "train.py line 1: SyntaxError: invalid syntax",
    )


def test_a_trial_sees_only_the_gpus_placed_for_it(env: Environment, settings: Settings) -> None:
    show = "import os\nprint('devices=' + os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'))\n"
    code = _with_train(env, show + env.read_editable()["train.py"])
    placed = _runner(env, settings, "quarter_gpu").run(TrialJob(1, 1, 1, 0, code, devices=("3",)))
    assert placed.status is TrialStatus.SUCCEEDED and "devices=3" in placed.log_tail
    cpu_only = _runner(env, settings, "quick").run(TrialJob(1, 2, 2, 0, code, devices=("3",)))
    assert "devices=\n" in cpu_only.log_tail  # a CPU preset sees no GPU, placed or not


def test_progress_lines_make_a_training_curve_thinned_to_its_limit() -> None:
    log = "params: 1,000\n" + "".join(
        f"step {n}  loss {10 / n:.4f}  lr=3e-4  {n * 0.1:.1f}s\n" for n in range(1, 101)
    )
    curve = parse_progress(log + "---\nloss: 0.1\n", limit=10)
    assert len(curve) == 10 and curve[0] == {"step": 1.0, "loss": 10.0, "lr": 3e-4}
    assert curve[-1]["step"] == 100.0  # the last point is always kept
    assert [p["step"] for p in curve] == sorted(p["step"] for p in curve)
    assert parse_progress("stepping 3 loss 1\nstep 4\n") == ()  # not a progress line; no values


def _tiny_with_prepare(tmp_path: Path, prepare_py: str, last_preset_extra: str = "") -> Environment:
    """A copy of tiny whose (protected) prepare.py is `prepare_py`, given the data folder as argv[1]."""
    root = tmp_path / "tiny"
    shutil.copytree(ENVIRONMENTS_DIR / "tiny", root)
    (root / "prepare.py").write_text(prepare_py)
    toml = (root / "environment.toml").read_text()
    toml = toml.replace("\n[files]", '\nprepare = ["{python}", "prepare.py", "{data}"]\n\n[files]')
    toml = toml.replace('protected = ["', 'protected = ["prepare.py", "')
    (root / "environment.toml").write_text(toml + last_preset_extra)
    return load_environment(root)


def test_two_campaigns_starting_together_prepare_the_data_once(tmp_path: Path, settings: Settings) -> None:
    env = _tiny_with_prepare(
        tmp_path,
        "import pathlib, sys, time\n"
        "runs = pathlib.Path(sys.argv[1]) / 'runs'\n"
        "runs.write_text(runs.read_text() + 'x' if runs.exists() else 'x')\n"
        "time.sleep(1)\n",
    )
    with ThreadPoolExecutor(2) as pool:
        folders = list(pool.map(lambda _: prepare_data(env, settings), range(2)))
    assert folders[0] == folders[1] and (folders[0] / "runs").read_text() == "x"


def test_a_dataset_changed_in_place_is_prepared_again(tmp_path: Path, settings: Settings) -> None:
    problems = tmp_path / "dataset" / "problems.jsonl"
    problems.parent.mkdir()
    problems.write_text("one\n")
    env = _tiny_with_prepare(
        tmp_path,
        f"import shutil, sys\nshutil.copyfile({str(problems)!r}, sys.argv[1] + '/problems')\n",
        f'inputs = {{ dataset = "{problems.parent}" }}\n',
    )
    assert (prepare_data(env, settings) / "problems").read_text() == "one\n"
    problems.write_text("one\ntwo\n")
    assert (prepare_data(env, settings) / "problems").read_text() == "one\ntwo\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root service runs trials as uids of their own")
def test_an_input_only_its_owner_may_read_is_refused_when_trials_run_as_their_own_uid(
    env: Environment, settings: Settings, tmp_path: Path
) -> None:
    from autoresearch.errors import ConfigError

    weights = tmp_path / "model" / "weights.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"\0" * 16)
    weights.chmod(0o600)
    copy = tmp_path / "tiny"
    shutil.copytree(env.root, copy)
    toml = copy / "environment.toml"
    toml.write_text(
        toml.read_text().replace(
            '[presets.quick]\ndescription = "Instant."\n',
            f'[presets.quick]\ndescription = "Instant."\ninputs = {{ model = "{weights.parent}" }}\n',
        )
    )
    with pytest.raises(ConfigError, match=f"{weights} is readable by its owner only.*chmod -R a\\+rX"):
        _runner(load_environment(copy), settings)
    weights.chmod(0o644)
    assert _run(load_environment(copy), settings, env.read_editable()).score == 11.0
