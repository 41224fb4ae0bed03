"""Throughput of trials packed on one GPU: k trials at a time on fractional slots against one alone.

Runs nanoGPT trials of a small preset through the real runner (sandboxed train + evaluate), placed
by the same GpuPool a GPU worker uses, first one at a time, then k at a time on one device; prints
trials per minute for each and the ratio, and writes bench/results/packing-PRESET.json.

    python bench/packing.py [--preset gpu_small] [--trials 8] [--packed 4] [--device 0]

It needs a CUDA GPU for the gpu presets. `--preset smoke` runs the same measurement on the CPU,
which only shows that the script works: CPU trials compete for cores, not for a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from autoresearch.adapters.gpus import query_gpus
from autoresearch.adapters.sandbox import make_sandbox
from autoresearch.domain.placement import GpuPool
from autoresearch.environment import load_environment
from autoresearch.services.runner import TrialJob, TrialRunner, prepare_data
from autoresearch.settings import Settings, bundled_path

RESULTS = Path(__file__).parent / "results"


def measure(runner: TrialRunner, pool: GpuPool, need: float, trials: int, at_once: int) -> dict[str, Any]:
    code = runner.env.read_editable()
    number = iter(range(10**6))
    lock = threading.Lock()

    def one(seed: int) -> float:
        placement = pool.place(need) if need > 0 else None
        try:
            with lock:
                n = next(number)
            job = TrialJob(
                0, n, n, seed, code, folder=f"{at_once}-{n}", devices=placement.devices if placement else None
            )
            result = runner.run(job)
            if result.score is None:
                raise SystemExit(f"trial {n} failed: {result.label}: {result.reason}\n{result.log_tail}")
            return result.score
        finally:
            if placement is not None:
                pool.release(placement)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=at_once) as threads:
        scores = list(threads.map(one, range(trials)))
    seconds = time.perf_counter() - started
    return {
        "at_once": at_once,
        "trials": trials,
        "seconds": round(seconds, 1),
        "trials_per_min": round(trials / seconds * 60, 2),
        "mean_score": sum(scores) / len(scores),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpu_small")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--packed", type=int, default=4, help="trials at once on the one GPU")
    parser.add_argument("--device", default="0", help="the GPU to pack (CUDA_VISIBLE_DEVICES index)")
    args = parser.parse_args()

    env = load_environment(bundled_path("environments") / "nanogpt")
    need = env.resources(env.spec.presets[args.preset]).gpu
    work = Path(tempfile.mkdtemp(prefix="autoresearch-packing-"))
    try:
        settings = Settings(data_dir=work, keep_trial_dirs=False)
        sandbox = make_sandbox(settings.sandbox)
        runner = TrialRunner(env, args.preset, settings, sandbox, prepare_data(env, settings))
        alone = measure(runner, GpuPool([args.device], slots_per_gpu=1), need, args.trials, 1)
        packed = measure(
            runner, GpuPool([args.device], slots_per_gpu=args.packed), need, args.trials, args.packed
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "machine": {"python": platform.python_version(), "gpu": _gpu_name()},
        "preset": args.preset,
        "gpu_need": need,
        "alone": alone,
        "packed": packed,
        "throughput_ratio": round(packed["trials_per_min"] / alone["trials_per_min"], 2),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"packing-{args.preset}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _gpu_name() -> str:
    names = query_gpus("name")
    return names[0][0] if names else "none"


if __name__ == "__main__":
    main()
