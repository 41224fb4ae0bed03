"""The protected evaluator: validation bits per byte of the model that training left.

    python evaluate.py --preset smoke --data DIR --out RUN [--split test]

It runs in its own process after training, loads the exported program (no code of the recipe
is imported), scores a fixed slice of the held-out files and prints the verdict as `key: value`
lines after `---`. A model whose predictions read future bytes is refused. `--split test` scores
test.bin, held-out files that only a confirmation reads, the same way and under the same keys.
"""

import argparse
import json
import math
import sys
import tomllib
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F

from autoresearch.exported import RefusedArchive, load_exported_program
from autoresearch.untrusted import read_regular

EXPORT_BATCH = 8


CRASHED, REFUSED = 2, 3  # exit codes: training left no usable model / the model breaks a rule


def fail(message, code=CRASHED):
    print(f"evaluate: {message}", file=sys.stderr)
    sys.exit(code)


def main():
    parser = argparse.ArgumentParser(description="Score validation bits per byte.")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", choices=("val", "test"), default="val")
    args = parser.parse_args()
    spec = tomllib.loads((Path(__file__).parent / "environment.toml").read_text())
    size = spec["presets"][args.preset]["model"]
    device = size.get("device", "cpu")

    try:
        meta = json.loads((args.out / "model.json").read_text())
        block_size = int(meta["block_size"])
        artifact = read_regular(args.out / "model.pt2")
        program = load_exported_program(args.out / "model.pt2")
    except RefusedArchive as exc:
        fail(f"model.pt2 refused: {exc}", REFUSED)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        fail(f"training left no loadable model: {exc}")
    model = program.module().to(device)
    # Count storage, not tensors: a tied weight is one set of parameters, and slices of one big
    # buffer cannot hide their size.
    storages = {t.untyped_storage().data_ptr(): t for t in program.state_dict.values()}
    params = sum(t.untyped_storage().nbytes() // t.element_size() for t in storages.values())

    val = torch.frombuffer(bytearray((args.data / f"{args.split}.bin").read_bytes()), dtype=torch.uint8)
    n_bytes = min(int(size["eval_bytes"]), len(val) - 1)
    windows = n_bytes // block_size
    windows -= windows % EXPORT_BATCH
    if windows == 0:
        fail(f"block_size {block_size} leaves no full batch in {n_bytes} {args.split} bytes")
    x_all = val[: windows * block_size].long().view(windows, block_size)
    y_all = val[1 : windows * block_size + 1].long().view(windows, block_size)

    total_nats = 0.0
    with torch.no_grad():
        for i in range(0, windows, EXPORT_BATCH):
            x = x_all[i : i + EXPORT_BATCH].to(device)
            y = y_all[i : i + EXPORT_BATCH].to(device)
            logits = model(x).float()
            if logits.shape != (EXPORT_BATCH, block_size, 256):
                fail(f"model returned shape {tuple(logits.shape)}, expected ({EXPORT_BATCH}, {block_size}, 256)")
            total_nats += F.cross_entropy(logits.view(-1, 256), y.view(-1), reduction="sum").item()
            if i == 0:
                half = block_size // 2
                scrambled = x.clone()
                scrambled[:, half:] = (scrambled[:, half:] + 1) % 256
                leak = (model(scrambled).float()[:, :half] - logits[:, :half]).abs().max().item()
                if leak > 1e-3:
                    fail(f"predictions change when future bytes change (max diff {leak:.3g}): not causal", REFUSED)
    bpb = total_nats / (windows * block_size) / math.log(2)
    if not math.isfinite(bpb):
        fail("validation loss is not finite")
    print("---")
    print(f"val_bpb: {bpb:.6f}")
    print(f"params: {params}")
    # What the golf preset caps: the exported program as zlib at level 9 stores it, so a recipe that
    # saves smaller or more compressible weights (fewer, or in fewer bits) fits more model.
    print(f"artifact_bytes: {len(zlib.compress(artifact, 9))}")
    print(f"eval_bytes: {windows * block_size}")


if __name__ == "__main__":
    main()
