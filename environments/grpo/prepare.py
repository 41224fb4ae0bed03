"""Draw the held-out problems apart from the training ones, and put the starting checkpoint in place.

    python prepare.py --data DIR     # writes DIR/train_pairs.txt, DIR/val.txt and DIR/sft.pt

Of the 10,000 sums a + b (a, b from 0 to 99), 500 drawn with a fixed seed are held out: val.txt
holds them with their answers and only the evaluator may read it. Training gets the other 9,500
pairs (without answers) and the supervised checkpoint it starts from. When the `gpu` preset names
a dataset (inputs.dataset), its problems are split the same way into hf_train.jsonl and
hf_val.jsonl.
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
HELD_OUT = 500


def split() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The held-out pairs and the training pairs, the same every time."""
    pairs = [(a, b) for a in range(100) for b in range(100)]
    random.Random(20261202).shuffle(pairs)
    return pairs[:HELD_OUT], sorted(pairs[HELD_OUT:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    held_out, train = split()
    args.data.mkdir(parents=True, exist_ok=True)
    files = {
        "val.txt": "".join(f"{a}+{b}={a + b}\n" for a, b in held_out),
        "train_pairs.txt": "".join(f"{a}+{b}\n" for a, b in train),
    }
    for name, text in files.items():
        partial = args.data / f"{name}.partial"
        partial.write_text(text)
        os.replace(partial, args.data / name)
    shutil.copyfile(HERE / "data" / "sft.pt", args.data / "sft.pt")
    print(f"{len(train):,} training pairs, {len(held_out)} held out")
    gpu = tomllib.loads((HERE / "environment.toml").read_text())["presets"]["gpu"]
    if gpu["inputs"].get("dataset"):
        prepare_dataset(Path(gpu["inputs"]["dataset"]), int(gpu["model"]["val_size"]), args.data)


def prepare_dataset(source: Path, val_size: int, data: Path) -> None:
    """The `gpu` preset's problems: every record of a JSON or JSON Lines file, or of every such file
    under a folder (MATH's layout), with a question ("problem" or "question") and an answer
    ("answer", or the last \\boxed{} of "solution"); val_size of them held out with a fixed seed."""
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
    if len(ordered) <= val_size:
        sys.exit(f"{source}: {len(ordered)} problems with answers, not more than val_size {val_size}")
    for name, part in (("hf_val.jsonl", ordered[:val_size]), ("hf_train.jsonl", ordered[val_size:])):
        lines = "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in part)
        (data / name).write_text(lines)
    print(f"{source}: {len(ordered) - val_size:,} training problems, {val_size} held out")


if __name__ == "__main__":
    main()
