"""Split the shipped handwritten digits into a training set and two held-out ones, the same way every
time.

    python prepare.py --data DIR     # writes DIR/train.bin, DIR/val.bin and DIR/test.bin

Each file holds records of 65 bytes: 64 pixel intensities (an 8 x 8 image, 0 to 16) and the label
(0 to 9). The 1,797 images are the UCI "Optical Recognition of Handwritten Digits" test set as
scikit-learn ships it (`sklearn.datasets.load_digits`), stored here so that nothing is downloaded.
Of the 500 held-out images, 300 are val.bin, which every search evaluation scores, and 200 are
test.bin, which only a confirmation's evaluation on the test split reads. Both are whole batches of
the exported model's 100 images, and val.bin is the first 300 of the 500 it held before.
Protected: the service runs it once per data folder; trials never change it.
"""

import argparse
import gzip
import hashlib
import os
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_SHA256 = "68aea062d35a127749050fa0e52dca09d6569ac08092c925610e0954e172dde2"
RECORD = 65
HELD_OUT = 500  # images the evaluator scores; training never sees them
VAL = 300  # of them, the search's; the other 200 are the test split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    blob = gzip.decompress((HERE / "data" / "digits.bin.gz").read_bytes())
    if hashlib.sha256(blob).hexdigest() != SOURCE_SHA256:
        sys.exit("data/digits.bin.gz is corrupt: its sha256 is not the one this script expects")
    records = [blob[i : i + RECORD] for i in range(0, len(blob), RECORD)]
    random.Random(0).shuffle(records)
    args.data.mkdir(parents=True, exist_ok=True)
    splits = {"val.bin": records[:VAL], "test.bin": records[VAL:HELD_OUT], "train.bin": records[HELD_OUT:]}
    for name, part in splits.items():
        partial = args.data / f"{name}.partial"
        partial.write_bytes(b"".join(part))
        os.replace(partial, args.data / name)
        print(f"{args.data / name}: {len(part):,} images")


if __name__ == "__main__":
    main()
