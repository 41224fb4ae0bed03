"""The protected evaluator: mean squared error of the trained line on the held-out points.

    python evaluate.py --data DIR --out RUN

It runs after training, from this folder, and imports nothing of the recipe: it reads only what
training left in --out and the held-out data. It prints its verdict as `key: value` lines after
`---`: the metric named in environment.toml, and `params` (compared with the preset's
max_params). Exit 3 refuses a model that breaks a rule of the environment (gate_miss); any other
non-zero exit is a crash.
"""

import argparse
import json
import math
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        model = json.loads((args.out / "model.json").read_text())
        w, b = float(model["w"]), float(model["b"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        sys.exit(f"evaluate: training left no usable model.json: {exc}")
    points = [tuple(map(float, line.split(","))) for line in (args.data / "val.csv").read_text().split()]
    mse = sum((w * x + b - y) ** 2 for x, y in points) / len(points)
    if not math.isfinite(mse):
        sys.exit("evaluate: the error is not a finite number")
    print("---")
    print(f"val_mse: {mse:.8f}")
    print("params: 2")


if __name__ == "__main__":
    main()
