"""What the sandbox costs a trial phase at start: the same interpreter run bare and in the sandbox.

Prints, and writes to bench/results/sandbox.json, the median and 90th percentile over N runs (50 by
default) of `sys.executable -c pass`, started as the runner starts a phase: bare (a plain
subprocess) and wrapped in the sandbox with a trial's mounts and limits (allow-list view, private
/tmp, no network, no capabilities, its own uid when run as root). The runs alternate, so both see
the same machine; the difference of the medians is the sandbox's cost.

    python bench/sandbox.py [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autoresearch.adapters.sandbox import Limits, Mounts, make_sandbox
from autoresearch.settings import SandboxMode

RESULTS = Path(__file__).parent / "results" / "sandbox.json"


def _time(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdin=subprocess.DEVNULL, start_new_session=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    sandbox = make_sandbox(SandboxMode.BWRAP)
    limits = Limits(processes=1024, file_bytes=10 << 30, tmp_bytes=1 << 30)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as scratch:
        root = Path(scratch)
        code, out = root / "code", root / "out"
        code.mkdir()
        out.mkdir()
        uid = sandbox.trial_uid(str(root))
        if uid is not None:
            for folder in (code, out):
                os.chown(folder, uid, uid)
        bare = [sys.executable, "-c", "pass"]
        wrapped = sandbox.wrap(bare, code, Mounts(writable=(code, out)), limits, uid)
        times: dict[str, list[float]] = {"bare": [], "sandboxed": []}
        for _ in range(3):  # warm the page cache for both
            _time(bare, code)
            _time(wrapped, code)
        for _ in range(args.runs):
            times["bare"].append(_time(bare, code))
            times["sandboxed"].append(_time(wrapped, code))
    figures = {
        name: {
            "median_ms": round(statistics.median(values), 2),
            "p90_ms": round(statistics.quantiles(values, n=10)[-1], 2),
        }
        for name, values in times.items()
    }
    cost = figures["sandboxed"]["median_ms"] - figures["bare"]["median_ms"]
    result = {
        "runs": args.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "runs_as_root": os.geteuid() == 0,
        **figures,
        "sandbox_cost_ms": round(cost, 2),
        "ratio": round(figures["sandboxed"]["median_ms"] / figures["bare"]["median_ms"], 2),
    }
    for name in ("bare", "sandboxed"):
        print(
            f"{name:10} median {figures[name]['median_ms']:7.2f} ms   p90 {figures[name]['p90_ms']:7.2f} ms"
        )
    print(f"sandbox cost per phase start: {cost:.2f} ms (x{result['ratio']}) over {args.runs} runs each")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
