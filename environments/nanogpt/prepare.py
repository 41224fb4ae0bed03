"""Unpack the shipped corpus into a data folder and verify it against data/SHA256SUMS.

    python prepare.py --data DIR     # writes DIR/train.bin and DIR/val.bin (raw bytes)

Protected: the service runs it once per data folder; trials never change it.
"""

import argparse
import hashlib
import lzma
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def expected_digests() -> dict[str, str]:
    lines = (HERE / "data" / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    for split, digest in expected_digests().items():
        target = args.data / split.replace(".txt", ".bin")
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == digest:
            continue
        blob = lzma.decompress((HERE / "data" / f"{split}.xz").read_bytes())
        actual = hashlib.sha256(blob).hexdigest()
        if actual != digest:
            sys.exit(f"data/{split}.xz is corrupt: sha256 {actual}, expected {digest}")
        partial = target.with_suffix(".partial")
        partial.write_bytes(blob)
        os.replace(partial, target)
        print(f"{target}: {len(blob):,} bytes")


if __name__ == "__main__":
    main()
