"""Write the data: noisy points on a line, split into training and held-out points, the same every time.

    python prepare.py --data DIR     # writes DIR/train.csv and DIR/val.csv

Protected: the service runs it once per data folder (again whenever a protected file changes);
trials never change it. Replace it with what prepares your data: it may only read files shipped
in this folder, since nothing is downloaded at run time.
"""

import argparse
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    rng = random.Random(0)
    points = [(x, 3.0 * x - 1.0 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(300))]
    args.data.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.csv", points[:200]), ("val.csv", points[200:])):
        (args.data / name).write_text("".join(f"{x!r},{y!r}\n" for x, y in part))


if __name__ == "__main__":
    main()
