"""The held-out test split: the contract's `data.test` and `{split}`, and the shipped environments'
splits, which must be disjoint from what training and the search see, and scored the same way."""

import importlib.util
import json
import lzma
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from autoresearch.environment import load_environment
from autoresearch.errors import ConfigError
from autoresearch.services.envcheck import CheckReport, report_dict

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ROOT / "environments"

VALID = """
name = "split"
description = "x"
default_preset = "p"
[metric]
name = "loss"
direction = "minimize"
[commands]
train = ["{python}", "train.py"]
evaluate = ["{python}", "evaluate.py", "--split", "{split}"]
[files]
editable = ["train.py"]
[data]
train = ["train.bin"]
evaluate = ["val.bin"]
test = ["test.bin"]
[presets.p]
budget = { steps = 5 }
"""


def _write_env(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "split"
    root.mkdir(parents=True)
    (root / "train.py").write_text("print('hi')\n")
    (root / "environment.toml").write_text(text)
    return root


def test_an_environment_with_a_test_split_that_names_it_in_evaluate_loads(tmp_path: Path) -> None:
    env = load_environment(_write_env(tmp_path, VALID))
    assert env.has_test_split and env.spec.data.test == ["test.bin"]
    without = load_environment(
        _write_env(
            tmp_path / "b", VALID.replace('test = ["test.bin"]\n', "").replace('"--split", "{split}"', "")
        )
    )
    assert not without.has_test_split


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (  # the evaluator could not tell test from val: it would score val again
            ('"--split", "{split}"', '"--split", "val"'),
            r"data\.test is set, so commands\.evaluate must pass \{split\}",
        ),
        (  # an escaped brace is a literal, not the placeholder
            ('"--split", "{split}"', '"--split", "{{split}}"'),
            r"commands\.evaluate must pass \{split\}",
        ),
        (  # training must not learn which split it is, nor be told to read test
            ('train = ["{python}", "train.py"]', 'train = ["{python}", "train.py", "{split}"]'),
            r"commands\.train: .*unknown placeholder \{split\}",
        ),
        (
            ("[commands]\n", '[commands]\nprepare = ["{python}", "prepare.py", "{split}"]\n'),
            r"commands\.prepare: .*unknown placeholder \{split\}",
        ),
        (
            ('evaluate = ["val.bin"]', 'evaluate = ["val.bin", "test.bin"]'),
            r"test file 'test\.bin' is also listed under data\.evaluate: the search would see it",
        ),
        (
            ('train = ["train.bin"]', 'train = ["train.bin", "test.bin"]'),
            r"test file 'test\.bin' is also listed under data\.train",
        ),
    ],
)
def test_a_test_split_the_search_could_see_or_the_evaluator_could_not_tell_apart_is_refused(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    root = _write_env(tmp_path, VALID.replace(*change))
    with pytest.raises(ConfigError, match=expected) as info:
        load_environment(root)
    assert str(info.value).startswith(str(root / "environment.toml")) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["nanogpt", "digits", "grpo"])
def test_each_shipped_environment_has_a_test_split_its_evaluator_is_told_about(name: str) -> None:
    env = load_environment(ENVIRONMENTS / name)
    assert env.has_test_split
    assert env.spec.commands.evaluate[-2:] == ["--split", "{split}"]
    assert not set(env.spec.data.test) & {*env.spec.data.train, *env.spec.data.evaluate}


def test_env_checks_report_says_whether_there_is_a_test_split() -> None:
    assert report_dict(CheckReport("e", "p", "m", test_split=True))["test_split"] is True
    assert report_dict(CheckReport("e", "p", "m"))["test_split"] is False


# -- the shipped environments' splits ----------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each shipped environment's data folder, as its own prepare.py writes it."""
    folders = {}
    for name in ("nanogpt", "digits", "grpo"):
        data = tmp_path_factory.mktemp(name)
        subprocess.run(
            [sys.executable, "prepare.py", "--data", str(data)],
            cwd=ENVIRONMENTS / name,
            check=True,
            capture_output=True,
        )
        folders[name] = data
    return folders


def test_nanogpt_cuts_the_held_out_files_in_two_at_a_file_boundary(prepared: dict[str, Path]) -> None:
    data = prepared["nanogpt"]
    held_out = lzma.decompress((ENVIRONMENTS / "nanogpt" / "data" / "val.txt.xz").read_bytes())
    train = lzma.decompress((ENVIRONMENTS / "nanogpt" / "data" / "train.txt.xz").read_bytes())
    val, test = (data / "val.bin").read_bytes(), (data / "test.bin").read_bytes()
    # val is held_out[0:len(val)] and test held_out[len(val):]: no byte of one is in the other.
    assert held_out.startswith(val) and val + test == held_out
    assert (data / "train.bin").read_bytes() == train
    assert test.startswith(b"# file: ") and val.endswith(b"\n")  # no file is split between them
    assert min(len(val), len(test)) > len(held_out) // 3


def _scored_bytes(split_bytes: int, eval_bytes: int, block_size: int) -> int:
    """How many bytes nanogpt's evaluator scores in a split: whole batches of 8 windows."""
    windows = min(eval_bytes, split_bytes - 1) // block_size
    return (windows - windows % 8) * block_size


def test_nanogpt_scores_every_presets_eval_bytes_on_each_split_and_val_as_before(
    prepared: dict[str, Path],
) -> None:
    """val.bin starts where the uncut held-out files did, so a preset scores the same val bytes as before
    the cut; and each split holds every preset's eval_bytes, so val and test score as many bytes."""
    spec = tomllib.loads((ENVIRONMENTS / "nanogpt" / "environment.toml").read_text())
    sizes = {split: (prepared["nanogpt"] / f"{split}.bin").stat().st_size for split in ("val", "test")}
    for name, preset in spec["presets"].items():
        eval_bytes, block_size = preset["model"]["eval_bytes"], preset["model"]["block_size"]
        for split, size in sizes.items():
            assert _scored_bytes(size, eval_bytes, block_size) == eval_bytes, (name, split)


def _records(path: Path) -> list[bytes]:
    blob = path.read_bytes()
    return [blob[i : i + 65] for i in range(0, len(blob), 65)]


def test_digits_holds_out_300_val_and_200_test_images_that_share_none_with_training(
    prepared: dict[str, Path],
) -> None:
    data = prepared["digits"]
    val, test, train = (_records(data / f"{split}.bin") for split in ("val", "test", "train"))
    assert (len(val), len(test), len(train)) == (300, 200, 1297)
    assert not set(val) & set(test) and not set(val) & set(train) and not set(test) & set(train)
    pixels = [{r[:64] for r in split} for split in (val, test, train)]
    assert not pixels[0] & pixels[1] and not (pixels[0] | pixels[1]) & pixels[2]  # not even as images


def _pairs(path: Path) -> set[str]:
    return {line.split("=")[0] for line in path.read_text().split()}


def test_grpo_holds_out_500_val_and_500_test_sums_that_training_never_gets(prepared: dict[str, Path]) -> None:
    data = prepared["grpo"]
    val, test, train = _pairs(data / "val.txt"), _pairs(data / "test.txt"), _pairs(data / "train_pairs.txt")
    assert (len(val), len(test), len(train)) == (500, 500, 9000)
    assert not val & test and not val & train and not test & train
    assert len(val | test | train) == 10_000
    for line in (data / "test.txt").read_text().split():  # with their answers, as val's are
        question, answer = line.split("=")
        a, b = question.split("+")
        assert int(answer) == int(a) + int(b)


def _grpo_prepare() -> ModuleType:
    sys.path.insert(0, str(ENVIRONMENTS / "grpo"))  # prepare.py imports tasks from beside it
    try:
        spec = importlib.util.spec_from_file_location("grpo_prepare", ENVIRONMENTS / "grpo" / "prepare.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ENVIRONMENTS / "grpo"))


def test_grpo_gpu_dataset_is_split_into_val_test_and_train_problems_apart(tmp_path: Path) -> None:
    source = tmp_path / "problems.jsonl"
    source.write_text(
        "".join(json.dumps({"question": f"{i}+{i}?", "answer": str(2 * i)}) + "\n" for i in range(25))
    )
    _grpo_prepare().prepare_dataset(source, 5, tmp_path)
    split = {
        name: {
            json.loads(line)["question"] for line in (tmp_path / f"hf_{name}.jsonl").read_text().splitlines()
        }
        for name in ("val", "test", "train")
    }
    assert [len(split[n]) for n in ("val", "test", "train")] == [5, 5, 15]
    assert not split["val"] & split["test"] and not (split["val"] | split["test"]) & split["train"]


def test_grpo_gpu_dataset_too_small_for_both_held_out_splits_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "problems.jsonl"
    source.write_text("".join(json.dumps({"question": f"{i}?", "answer": str(i)}) + "\n" for i in range(10)))
    with pytest.raises(SystemExit, match="not more than twice val_size 5"):
        _grpo_prepare().prepare_dataset(source, 5, tmp_path)


# -- the evaluators on the test split ------------------------------------------------------------------


def _shown_only(data: Path, files: list[str], folder: Path) -> Path:
    """A data folder holding only the given files: what the runner mounts for one split."""
    folder.mkdir()
    for name in files:
        shutil.copyfile(data / name, folder / name)
    return folder


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _verdict(stdout: str) -> dict[str, float]:
    return {
        k: float(v) for k, v in (line.split(": ") for line in stdout.split("---")[-1].split("\n") if line)
    }


def test_nanogpt_evaluator_scores_a_baseline_model_on_the_test_split_alone(
    prepared: dict[str, Path], tmp_path: Path
) -> None:
    root, out = ENVIRONMENTS / "nanogpt", tmp_path / "out"
    common = ["--preset", "smoke", "--data", str(prepared["nanogpt"]), "--out", str(out)]
    trained = _run(["train.py", "--seed", "0", *common], root)
    assert trained.returncode == 0, trained.stderr
    env = load_environment(root)
    test_only = _shown_only(prepared["nanogpt"], env.spec.data.test, tmp_path / "test-only")
    argv = ["evaluate.py", "--preset", "smoke", "--data", str(test_only), "--out", str(out)]
    scored = _run([*argv, "--split", "test"], root)
    assert scored.returncode == 0, scored.stderr
    verdict = _verdict(scored.stdout)
    assert 0 < verdict["val_bpb"] < 8 and verdict["eval_bytes"] == 16_384  # the metric's own key, as on val
    assert _run([*argv, "--split", "val"], root).returncode != 0  # the val file is not there: it read test


def test_digits_evaluator_gates_the_test_split_on_the_same_target(
    prepared: dict[str, Path], tmp_path: Path
) -> None:
    root, out = ENVIRONMENTS / "digits", tmp_path / "out"
    trained = _run(["train.py", "--data", str(prepared["digits"]), "--out", str(out)], root)
    assert trained.returncode == 0, trained.stderr
    test_only = _shown_only(prepared["digits"], ["test.bin"], tmp_path / "test-only")
    argv = [
        "evaluate.py",
        "--data",
        str(test_only),
        "--out",
        str(out),
        "--train-seconds",
        "2",
        "--split",
        "test",
    ]
    scored = _run(argv, root)
    assert scored.returncode == 0, scored.stderr
    verdict = _verdict(scored.stdout)
    assert verdict["train_seconds"] == 2.0 and 0.93 <= verdict["val_accuracy"] <= 1.0
    strict = tmp_path / "strict"  # the same model against a target it cannot reach: refused on test too
    shutil.copytree(root, strict, ignore=shutil.ignore_patterns("__pycache__"))
    toml = strict / "environment.toml"
    toml.write_text(toml.read_text().replace("target_accuracy = 0.93", "target_accuracy = 1.01"))
    refused = _run(argv, strict)
    assert refused.returncode == 3 and "test accuracy" in refused.stderr


def test_grpo_evaluator_scores_a_baseline_policy_on_the_test_sums_alone(
    prepared: dict[str, Path], tmp_path: Path
) -> None:
    root, out = tmp_path / "grpo", tmp_path / "out"
    shutil.copytree(ENVIRONMENTS / "grpo", root, ignore=shutil.ignore_patterns("__pycache__"))
    toml = root / "environment.toml"
    toml.write_text(toml.read_text().replace("budget = { steps = 150,", "budget = { steps = 2,"))
    trained = _run(["train.py", "--data", str(prepared["grpo"]), "--out", str(out)], root)
    assert trained.returncode == 0, trained.stderr
    test_only = _shown_only(prepared["grpo"], ["test.txt"], tmp_path / "test-only")
    scored = _run(["evaluate.py", "--data", str(test_only), "--out", str(out), "--split", "test"], root)
    assert scored.returncode == 0, scored.stderr
    assert 0.3 < _verdict(scored.stdout)["val_accuracy"] <= 1.0  # the checkpoint's sums, two steps on
