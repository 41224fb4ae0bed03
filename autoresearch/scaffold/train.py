"""The editable recipe: fit y = w * x + b to the training points by gradient descent.

    python prepare.py --data /tmp/env-data
    python train.py --data /tmp/env-data --out /tmp/env-run
    python evaluate.py --data /tmp/env-data --out /tmp/env-run

Everything in this file may change in a trial. It reads its budget from its copy of
environment.toml, may read only the training data, and must leave in --out what the evaluator
loads (here model.json). Progress lines (`step N loss X`) become the trial's training curve.
"""

import argparse
import json
import random
import tomllib
from pathlib import Path

# Hyperparameters: `name = number` lines that the catalog's mutations change.
learning_rate = 0.01
init_scale = 1.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    spec = tomllib.loads((Path(__file__).parent / "environment.toml").read_text())
    steps = spec["presets"][args.preset]["budget"]["steps"]
    rng = random.Random(args.seed)
    points = [tuple(map(float, line.split(","))) for line in (args.data / "train.csv").read_text().split()]

    w, b = rng.gauss(0, init_scale), rng.gauss(0, init_scale)
    for step in range(1, steps + 1):
        errors = [(w * x + b - y, x) for x, y in points]
        loss = sum(e * e for e, _ in errors) / len(errors)
        w -= learning_rate * 2 * sum(e * x for e, x in errors) / len(errors)
        b -= learning_rate * 2 * sum(e for e, _ in errors) / len(errors)
        if step % 20 == 0:
            print(f"step {step}  loss {loss:.6f}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model.json").write_text(json.dumps({"w": w, "b": b}))
    print("---")
    print(f"train_loss: {loss:.6f}")


if __name__ == "__main__":
    main()
