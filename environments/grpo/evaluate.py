"""The protected evaluator: greedy accuracy on the held-out sums.

    python evaluate.py --data DIR --out RUN [--split test]

It loads the exported program (no code of the recipe is imported), answers each of the 500
held-out problems of val.txt greedily, one character at a time, and scores an answer right only
when it is the exact sum followed by the end of the answer. `--split test` scores the 500 of
test.txt (hf_test.jsonl for the gpu preset), which only a confirmation reads, the same way and
under the same keys.
"""

import argparse
import sys
import tomllib
from pathlib import Path

import tasks
import torch

from autoresearch.exported import RefusedArchive, load_exported_program

EXPORT_BATCH = 100
CRASHED, REFUSED = 2, 3  # exit codes: training left no usable model / the model breaks a rule


def fail(message, code=CRASHED):
    print(f"evaluate: {message}", file=sys.stderr)
    sys.exit(code)


def main():
    parser = argparse.ArgumentParser(description="Score greedy accuracy on the held-out sums.")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", choices=("val", "test"), default="val")
    args = parser.parse_args()
    spec = tomllib.loads((Path(__file__).parent / "environment.toml").read_text())
    preset = spec["presets"][args.preset]
    if "model" in preset.get("inputs", {}):
        return evaluate_hf(args, preset["model"], Path(preset["inputs"]["model"]))
    try:
        program = load_exported_program(args.out / "model.pt2")
    except RefusedArchive as exc:
        fail(f"model.pt2 refused: {exc}", REFUSED)
    except (OSError, ValueError, RuntimeError) as exc:
        fail(f"training left no loadable model: {exc}")
    model = program.module()
    problems = []
    for line in (args.data / f"{args.split}.txt").read_text().split():
        question, _ = line.split("=")
        a, b = question.split("+")
        problems.append((int(a), int(b)))

    correct = 0
    with torch.no_grad():
        for start in range(0, len(problems), EXPORT_BATCH):
            batch = problems[start : start + EXPORT_BATCH]
            rows = torch.full((EXPORT_BATCH, tasks.BLOCK), tasks.PAD, dtype=torch.long)
            lengths = torch.zeros(EXPORT_BATCH, dtype=torch.long)
            for i, (a, b) in enumerate(batch):
                ids = tasks.encode(tasks.prompt(a, b))
                rows[i, : len(ids)] = torch.tensor(ids)
                lengths[i] = len(ids)
            index = torch.arange(EXPORT_BATCH)
            for step in range(tasks.ANSWER_CHARS):
                logits = model(rows)
                if tuple(logits.shape) != (EXPORT_BATCH, tasks.BLOCK, len(tasks.VOCAB)):
                    fail(f"model returned shape {tuple(logits.shape)}, expected ({EXPORT_BATCH}, {tasks.BLOCK}, {len(tasks.VOCAB)})")
                rows[index, lengths + step] = logits[index, lengths + step - 1].argmax(-1)
            for i, (a, b) in enumerate(batch):
                answer = tasks.decode(rows[i, lengths[i] : lengths[i] + tasks.ANSWER_CHARS].tolist())
                correct += tasks.reward(a, b, answer) == 1.0
    print("---")
    print(f"val_accuracy: {correct / len(problems):.4f}")
    print(f"params: {sum(t.numel() for t in program.state_dict.values())}")


def evaluate_hf(args, settings, base):
    """The `gpu` preset: greedy answers of the saved policy to the held-out problems, right when the
    last \\boxed{} matches the reference.

    Only the policy's weights come from training, and only as safetensors: the architecture, the
    tokenizer and the generation settings are the base model's, so nothing training wrote is code
    (no pickled weights, no remote code) or changes how answers are decoded."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    device, dtype = settings.get("device", "cuda"), getattr(torch, settings.get("dtype", "bfloat16"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        config = AutoConfig.from_pretrained(base)
    except (OSError, ValueError) as exc:
        fail(f"the base model in {base} does not load: {exc}")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            args.out / "policy", config=config, dtype=dtype, use_safetensors=True, trust_remote_code=False
        )
    except (OSError, ValueError) as exc:
        fail(f"training left no policy in {args.out / 'policy'} as safetensors: {exc}")
    model = model.to(device).eval()
    try:
        model.generation_config = GenerationConfig.from_pretrained(base)
    except OSError:
        model.generation_config = GenerationConfig.from_model_config(config)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    problems = tasks.read_problems(args.data / f"hf_{args.split}.jsonl")
    batch_size, correct = int(settings["eval_batch"]), 0
    with torch.no_grad():
        for start in range(0, len(problems), batch_size):
            batch = problems[start : start + batch_size]
            prompts = tokenizer([tasks.math_prompt(p["question"]) for p in batch], return_tensors="pt", padding=True)
            prompts = prompts.to(device)
            sequences = model.generate(
                **prompts,
                do_sample=False,
                max_new_tokens=int(settings["max_new_tokens"]),
                pad_token_id=tokenizer.pad_token_id,
            )
            texts = tokenizer.batch_decode(sequences[:, prompts["input_ids"].shape[1] :], skip_special_tokens=True)
            correct += sum(tasks.math_reward(t, p["answer"]) for t, p in zip(texts, batch, strict=True))
    print("---")
    print(f"val_accuracy: {correct / len(problems):.4f}")
    print(f"params: {sum(p.numel() for p in model.parameters())}")


if __name__ == "__main__":
    main()
