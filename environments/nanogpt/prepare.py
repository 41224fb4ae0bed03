"""Unpack the shipped corpus into a data folder and verify it against data/SHA256SUMS.

    python prepare.py --data DIR     # writes DIR/train.bin, DIR/val.bin and DIR/test.bin (raw bytes)

The held-out files (val.txt) are cut in two at a file boundary near their middle: val.bin, which every
search evaluation scores, and test.bin, which only a confirmation's evaluation on the test split reads.

Protected: the service runs it once per data folder; trials never change it.
"""

import argparse
import hashlib
import lzma
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Where test.bin starts in val.txt: the `# file: imaplib.py` header, the last file boundary before the
# middle. val.bin keeps the 17 files before it (271,519 bytes) and test.bin the other 14 (322,449), so
# no file is split. Each split holds every preset's eval_bytes (at most 270,336), and val.bin starts
# with the bytes val.txt did: a preset scores the same val bytes as before the cut (gpu, whose
# eval_bytes was 589,824, now scores its first 270,336).
TEST_STARTS_AT = 271_519
# Each shipped split and the data files cut from it, as (name, start, end) byte ranges.
FILES = {
    "train.txt": (("train.bin", 0, None),),
    "val.txt": (("val.bin", 0, TEST_STARTS_AT), ("test.bin", TEST_STARTS_AT, None)),
}


def expected_digests() -> dict[str, str]:
    lines = (HERE / "data" / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def already_cut(targets: list[tuple[Path, int, int | None]], digest: str) -> bool:
    """Whether a split's files are in place, cut where they should be, and together match its digest."""
    if not all(path.exists() for path, _, _ in targets):
        return False
    parts = [path.read_bytes() for path, _, _ in targets]
    if any(end is not None and len(part) != end - start for part, (_, start, end) in zip(parts, targets, strict=True)):
        return False
    return hashlib.sha256(b"".join(parts)).hexdigest() == digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    for split, digest in expected_digests().items():
        targets = [(args.data / name, start, end) for name, start, end in FILES[split]]
        if already_cut(targets, digest):
            continue
        blob = lzma.decompress((HERE / "data" / f"{split}.xz").read_bytes())
        actual = hashlib.sha256(blob).hexdigest()
        if actual != digest:
            sys.exit(f"data/{split}.xz is corrupt: sha256 {actual}, expected {digest}")
        for target, start, end in targets:
            part = blob[start:end]
            partial = target.with_suffix(".partial")
            partial.write_bytes(part)
            os.replace(partial, target)
            print(f"{target}: {len(part):,} bytes")


if __name__ == "__main__":
    main()
