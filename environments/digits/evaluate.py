"""The protected evaluator: accuracy on the held-out digits, and the training time it took.

    python evaluate.py --data DIR --out RUN --train-seconds SECONDS [--split test]

It loads the exported program (no code of the recipe is imported) and scores the 300 held-out
images of val.bin, or with `--split test` the 200 of test.bin that only a confirmation reads. Below
the preset's target accuracy on the split it scores the model is refused (exit 3: the trial is
`gate_miss`); at or above it, the verdict's score is the training time the service measured and
passed in. The keys are the same on either split.
"""

import argparse
import sys
import tomllib
from pathlib import Path

import torch

from autoresearch.exported import RefusedArchive, load_exported_program

EXPORT_BATCH = 100
CRASHED, REFUSED = 2, 3  # exit codes: training left no usable model / the model misses the target


def fail(message, code=CRASHED):
    print(f"evaluate: {message}", file=sys.stderr)
    sys.exit(code)


def main():
    parser = argparse.ArgumentParser(description="Score held-out accuracy against the target.")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-seconds", type=float, required=True)
    parser.add_argument("--split", choices=("val", "test"), default="val")
    args = parser.parse_args()
    spec = tomllib.loads((Path(__file__).parent / "environment.toml").read_text())
    target = float(spec["presets"][args.preset]["model"]["target_accuracy"])

    try:
        program = load_exported_program(args.out / "model.pt2")
    except RefusedArchive as exc:
        fail(f"model.pt2 refused: {exc}", REFUSED)
    except (OSError, ValueError, RuntimeError) as exc:
        fail(f"training left no loadable model: {exc}")
    model = program.module()
    records = torch.frombuffer(bytearray((args.data / f"{args.split}.bin").read_bytes()), dtype=torch.uint8).view(-1, 65)
    pixels, labels = records[:, :64].float(), records[:, 64].long()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), EXPORT_BATCH):
            logits = model(pixels[i : i + EXPORT_BATCH])
            if tuple(logits.shape) != (EXPORT_BATCH, 10):
                fail(f"model returned shape {tuple(logits.shape)}, expected ({EXPORT_BATCH}, 10)")
            correct += int((logits.argmax(1) == labels[i : i + EXPORT_BATCH]).sum())
    accuracy = correct / len(labels)
    params = sum(t.numel() for t in program.state_dict.values())
    if accuracy < target:
        fail(f"{args.split} accuracy {accuracy:.4f} is below the target {target}: the race was not finished", REFUSED)
    print("---")
    print(f"train_seconds: {args.train_seconds:.3f}")
    print(f"val_accuracy: {accuracy:.4f}")
    print(f"params: {params}")


if __name__ == "__main__":
    main()
