"""Draw the held-out problems apart from the training ones, and put the starting checkpoint in place.

    python prepare.py --data DIR     # writes DIR/train_pairs.txt, DIR/val.txt and DIR/sft.pt

Of the 10,000 sums a + b (a, b from 0 to 99), 500 drawn with a fixed seed are held out: val.txt
holds them with their answers and only the evaluator may read it. Training gets the other 9,500
pairs (without answers) and the supervised checkpoint it starts from.
Protected: the service runs it once per data folder; trials never change it.
"""

import argparse
import os
import random
import shutil
from pathlib import Path

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


if __name__ == "__main__":
    main()
