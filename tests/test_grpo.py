"""The GRPO environment's protected side: training can reach neither the held-out answers nor the
reward the evaluator uses, by any path tried here. Real runner, real sandbox, no training."""

import json
import shutil
from pathlib import Path

import pytest

from autoresearch.adapters.sandbox import make_sandbox
from autoresearch.domain.diffs import make_diff
from autoresearch.domain.model import FailureLabel, TrialStatus
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
    sandbox = make_sandbox(settings.sandbox)
    return TrialRunner(env, "cpu", settings, sandbox, prepare_data(env, settings))


def test_training_cannot_read_the_held_out_answers_by_any_path_tried(
    env: Environment, runner: TrialRunner
) -> None:
    data_dir, root, home = runner.data_dir, env.root, runner.settings.data_dir
    targets = [
        data_dir / "val.txt",  # the held-out answers where the evaluator reads them
        data_dir / "test.txt",  # and those of the test split
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


def _tiny_hf_model(folder: Path) -> None:
    """A randomly initialised two-layer Llama and a character tokenizer, built from a config: nothing
    is downloaded."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    chars = list("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+-*/=?.,:;()[]{}\\$ \n")
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>", *chars])}
    model = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    model.decoder = tokenizers.decoders.Fuse()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=model, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(folder)
    config = transformers.LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    # save_pretrained keeps the weights to their owner; a model folder shared with trials is readable
    for path in folder.iterdir():
        path.chmod(0o644)


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(
                not __import__("torch").cuda.is_available(), reason="needs a CUDA device"
            ),
        ),
    ],
)
def test_the_gpu_preset_trains_and_scores_a_hugging_face_model_from_local_paths(
    tmp_path: Path, device: str
) -> None:
    """The `gpu` preset's code path end to end through the runner and the sandbox: prepare splits a
    MATH-style dataset folder, GRPO trains a Hugging Face model read from its local folder, the
    evaluator scores the saved policy's greedy answers on the held-out problems."""
    model_dir, dataset = tmp_path / "inputs" / "model", tmp_path / "inputs" / "math"
    _tiny_hf_model(model_dir)
    (dataset / "algebra").mkdir(parents=True)
    for i in range(40):
        problem = {"problem": f"What is {i}+{i}?", "solution": f"It is $\\boxed{{{2 * i}}}$.", "level": "1"}
        (dataset / "algebra" / f"{i}.json").write_text(json.dumps(problem))
    root = tmp_path / "envs" / "grpo"
    shutil.copytree(GRPO, root)
    toml = (root / "environment.toml").read_text()
    small = toml.replace(
        "budget = { steps = 100, wall_clock_s = 14_400 }", "budget = { steps = 2, wall_clock_s = 600 }"
    )
    small = small.replace(
        'model = { device = "cuda", dtype = "bfloat16", max_new_tokens = 512, val_size = 500, eval_batch = 64 }',
        f'model = {{ device = "{device}", dtype = "float32", max_new_tokens = 12, val_size = 10, eval_batch = 4 }}',
    )
    small = small.replace(
        'inputs = { model = "", dataset = "" }',
        f'inputs = {{ model = "{model_dir}", dataset = "{dataset}" }}',
    )
    assert small.count(str(model_dir)) == 1 and "steps = 2," in small
    (root / "environment.toml").write_text(small)
    env = load_environment(root)
    settings = Settings(data_dir=tmp_path / "data")
    sandbox = make_sandbox(settings.sandbox)
    data_dir = prepare_data(env, settings)
    assert len((data_dir / "hf_val.jsonl").read_text().splitlines()) == 10
    assert len((data_dir / "hf_test.jsonl").read_text().splitlines()) == 10
    assert len((data_dir / "hf_train.jsonl").read_text().splitlines()) == 20

    runner = TrialRunner(env, "gpu", settings, sandbox, data_dir)
    result = runner.run(TrialJob(1, 1, 1, 0, env.read_editable()))
    assert result.status is TrialStatus.SUCCEEDED, result.log_tail
    assert result.score is not None and 0.0 <= result.score <= 1.0
    assert result.metrics["params"] > 0 and result.metrics["steps"] == 2
    assert len(result.curve) == 2  # a reward per step
