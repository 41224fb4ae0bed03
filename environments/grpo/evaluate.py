"""The protected evaluator: greedy accuracy on the held-out sums.

    python evaluate.py --data DIR --out RUN

It loads the exported program (no code of the recipe is imported), answers each of the 500
held-out problems greedily, one character at a time, and scores an answer right only when it is
the exact sum followed by the end of the answer.
"""

import argparse
import sys
from pathlib import Path

import tasks
import torch

EXPORT_BATCH = 100
CRASHED = 2


def fail(message):
    print(f"evaluate: {message}", file=sys.stderr)
    sys.exit(CRASHED)


def main():
    parser = argparse.ArgumentParser(description="Score greedy accuracy on the held-out sums.")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        program = torch.export.load(args.out / "model.pt2")
    except (OSError, ValueError, RuntimeError) as exc:
        fail(f"training left no loadable model: {exc}")
    model = program.module()
    problems = []
    for line in (args.data / "val.txt").read_text().split():
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


if __name__ == "__main__":
    main()
