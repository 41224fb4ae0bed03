"""Draw the held-out problems apart from the training ones, and put the starting checkpoint in place.

    python prepare.py --data DIR     # writes DIR/train_pairs.txt, DIR/val.txt, DIR/test.txt, DIR/sft.pt

Of the 10,000 sums a + b (a, b from 0 to 99), 1,000 drawn with a fixed seed are held out, with
their answers: val.txt (500), which every search evaluation scores, and test.txt (the next 500),
which only a confirmation's evaluation on the test split reads. Training gets the other 9,000 pairs
(without answers) and the supervised checkpoint it starts from, which build_sft.py trained on those
9,000 alone. When the `gpu` preset names a dataset (inputs.dataset), its problems are split the
same way into hf_train.jsonl, hf_val.jsonl and hf_test.jsonl (val_size each for val and test).
Protected: the service runs it once per data folder; trials never change it.
"""

import argparse
import json
import os
import random
import shutil
import sys
import tomllib
from pathlib import Path

import tasks

HERE = Path(__file__).resolve().parent
HELD_OUT = 500  # problems in each of the val and the test split

Pairs = list[tuple[int, int]]


def split() -> tuple[Pairs, Pairs, Pairs]:
    """The val pairs, the test pairs and the training pairs, the same every time."""
    pairs = [(a, b) for a in range(100) for b in range(100)]
    random.Random(20261202).shuffle(pairs)
    return pairs[:HELD_OUT], pairs[HELD_OUT : 2 * HELD_OUT], sorted(pairs[2 * HELD_OUT :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    val, test, train = split()
    args.data.mkdir(parents=True, exist_ok=True)
    files = {
        "val.txt": "".join(f"{a}+{b}={a + b}\n" for a, b in val),
        "test.txt": "".join(f"{a}+{b}={a + b}\n" for a, b in test),
        "train_pairs.txt": "".join(f"{a}+{b}\n" for a, b in train),
    }
    for name, text in files.items():
        partial = args.data / f"{name}.partial"
        partial.write_text(text)
        os.replace(partial, args.data / name)
    shutil.copyfile(HERE / "data" / "sft.pt", args.data / "sft.pt")
    print(f"{len(train):,} training pairs, {len(val)} held out for val and {len(test)} for test")
    gpu = tomllib.loads((HERE / "environment.toml").read_text())["presets"]["gpu"]
    if gpu["inputs"].get("dataset"):
        prepare_dataset(Path(gpu["inputs"]["dataset"]), int(gpu["model"]["val_size"]), args.data)


def prepare_dataset(source: Path, val_size: int, data: Path) -> None:
    """The `gpu` preset's problems: every record of a JSON or JSON Lines file, or of every such file
    under a folder (MATH's layout), with a question ("problem" or "question") and an answer
    ("answer", or the last \\boxed{} of "solution"); val_size of them held out with a fixed seed for
    val, and as many again for test."""
    files = sorted(source.rglob("*.json*")) if source.is_dir() else [source]
    if not files:
        sys.exit(f"{source}: no .json or .jsonl files (presets.gpu.inputs.dataset)")
    problems = {}
    for file in files:
        text = file.read_text()
        records = [json.loads(line) for line in text.splitlines() if line.strip()] if file.suffix == ".jsonl" else json.loads(text)
        for record in records if isinstance(records, list) else [records]:
            question = record.get("problem") or record.get("question")
            answer = record.get("answer") or tasks.boxed(record.get("solution", ""))
            if question and answer:
                problems[question] = str(answer)
    ordered = sorted(problems.items())
    random.Random(20261202).shuffle(ordered)
    if len(ordered) <= 2 * val_size:
        sys.exit(f"{source}: {len(ordered)} problems with answers, not more than twice val_size {val_size}")
    parts = {
        "hf_val.jsonl": ordered[:val_size],
        "hf_test.jsonl": ordered[val_size : 2 * val_size],
        "hf_train.jsonl": ordered[2 * val_size :],
    }
    for name, part in parts.items():
        lines = "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in part)
        (data / name).write_text(lines)
    print(f"{source}: {len(ordered) - 2 * val_size:,} training problems, {val_size} held out for val and {val_size} for test")


if __name__ == "__main__":
    main()
