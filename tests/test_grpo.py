"""The GRPO environment's protected side: training can reach neither the held-out answers nor the
reward the evaluator uses, by any path tried here. Real runner, real sandbox, no training."""

from pathlib import Path

import pytest

from autoresearch.adapters.sandbox import make_sandbox
from autoresearch.domain.diffs import make_diff
from autoresearch.domain.model import FailureLabel
from autoresearch.environment import Environment, load_environment
from autoresearch.services.implementer import apply_checked
from autoresearch.services.runner import TrialJob, TrialRunner, prepare_data
from autoresearch.settings import Settings

GRPO = Path(__file__).resolve().parents[1] / "environments" / "grpo"


@pytest.fixture
def env() -> Environment:
    return load_environment(GRPO)


@pytest.fixture
def runner(env: Environment, tmp_path: Path) -> TrialRunner:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'data' / 'db.sqlite'}"
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "db.sqlite").write_text("the service's database")
    sandbox, warning = make_sandbox(settings.sandbox)
    if warning:
        pytest.skip(warning)
    return TrialRunner(env, "cpu", settings, sandbox, prepare_data(env, settings))


def test_training_cannot_read_the_held_out_answers_by_any_path_tried(
    env: Environment, runner: TrialRunner
) -> None:
    data_dir, root, home = runner.data_dir, env.root, runner.settings.data_dir
    targets = [
        data_dir / "val.txt",  # the held-out answers where the evaluator reads them
        root / "prepare.py",  # the split's seed: with it, the held-out problems
        root / "evaluate.py",
        root / "build_sft.py",
        root / "data" / "sft.pt",
        home / "db.sqlite",
    ]
    probe = f"""
import glob, os
targets = {[str(t) for t in targets]!r}
for path in targets:
    try:
        open(path, "rb").read(1)
        print("OPENED", path)
    except OSError as exc:
        print("REFUSED", path, type(exc).__name__)
# the same files by relative paths up from the working copy, and anything named like them
here = os.getcwd()
for up in range(1, 8):
    base = os.path.join(here, *[".."] * up)
    for name in ("val.txt", "prepare.py", "evaluate.py"):
        for found in glob.glob(os.path.join(base, "**", name), recursive=True)[:50]:
            try:
                text = open(found).read()
            except OSError:
                continue
            if "+" in text and "=" in text or "split" in text or "val.txt" in text:
                print("OPENED", os.path.realpath(found))
print("probe done")
"""
    code = dict(env.read_editable()) | {"train.py": probe}
    job = TrialJob(1, 1, 1, 0, code)
    result = runner.run(job)
    log = (runner.trial_dir(job) / "train.log").read_text()
    assert "probe done" in log
    assert "OPENED" not in log, log
    assert log.count("REFUSED") == len(targets)
    assert result.label is FailureLabel.CRASH  # it left no model: the evaluator has nothing to score


def test_a_patch_or_a_training_run_that_changes_the_reward_is_illegal_edit(
    env: Environment, runner: TrialRunner
) -> None:
    baseline = env.read_editable()
    tasks = (GRPO / "tasks.py").read_text()
    always_right = tasks.replace("return 1.0 if completion.split", "return 1.0 or completion.split")
    attempt, code = apply_checked(make_diff({"tasks.py": tasks}, {"tasks.py": always_right}), baseline, env)
    assert attempt.label is FailureLabel.ILLEGAL_EDIT and code is None

    rewrite = f"open('tasks.py', 'w').write({always_right!r})\n"
    result = runner.run(TrialJob(1, 2, 2, 0, baseline | {"train.py": rewrite}))
    assert result.label is FailureLabel.ILLEGAL_EDIT and "tasks.py" in result.reason
