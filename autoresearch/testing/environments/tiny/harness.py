"""Protected helper the training script imports: writes what training leaves for the evaluator."""

import sys


def arg(name, default=None):
    """The value after `--name` on the command line (no argparse: this environment must cost nothing)."""
    flag = f"--{name}"
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else default


def save(out, x, y, params):
    with open(f"{out}/result.txt", "w") as handle:
        handle.write(f"{x!r} {y!r} {params!r}\n")
