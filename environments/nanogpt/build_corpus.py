"""Build the frozen corpus: CPython's standard library source, split into train and val.

Run once by a maintainer; the output is committed (compressed, with its sha256) and never rebuilt
at run time, because each Python release ships a different standard library. Rules: every .py
file of the stdlib except test folders, idlelib, lib2to3 and site-packages, in sorted order, each
preceded by a `# file: <path>` line; a file goes to val when sha256(path) % 20 == 0.
"""

import argparse
import hashlib
import lzma
import sys
import sysconfig
from pathlib import Path

EXCLUDED_PARTS = {"test", "tests", "idle_test", "idlelib", "lib2to3", "site-packages"}


def stdlib_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if not EXCLUDED_PARTS.intersection(p.relative_to(root).parts)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    root = Path(sysconfig.get_paths()["stdlib"])
    splits: dict[str, list[bytes]] = {"train": [], "val": []}
    for rel in stdlib_files(root):
        text = (root / rel).read_bytes()
        split = "val" if int(hashlib.sha256(rel.encode()).hexdigest(), 16) % 20 == 0 else "train"
        splits[split].append(f"# file: {rel}\n".encode() + text + b"\n")
    sums = []
    for split, parts in splits.items():
        blob = b"".join(parts)
        packed = lzma.compress(blob, preset=9 | lzma.PRESET_EXTREME)
        name = f"{split}.txt.xz"
        (args.out / name).write_bytes(packed)
        sums.append(f"{hashlib.sha256(blob).hexdigest()}  {split}.txt\n")
        print(f"{split}: {len(parts)} files, {len(blob) / 1e6:.2f} MB raw, {len(packed) / 1e6:.2f} MB xz")
    (args.out / "SHA256SUMS").write_text("".join(sums))
    (args.out / "SOURCE").write_text(f"CPython {sys.version.split()[0]} standard library\n")


if __name__ == "__main__":
    main()
