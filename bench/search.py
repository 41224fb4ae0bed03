"""Do the search strategies differ, once each campaign's winner is confirmed on fresh seeds?

For each environment preset, every strategy runs the same number of campaigns (replicates) at the
same search budget, with the catalog proposer. Replicate r is paired across strategies: its search
seed is r and its training seed r * SEED_STRIDE for every strategy, so two strategies' replicate r
share the baseline's search run and the confirmation seeds. Each campaign then confirms its best
programs and the baseline on fresh seeds, as a campaign of the product does.

The figure of merit of a campaign is its confirmed gain: the confirmed winner's mean score on the
reported split (test, where the environment has one) minus the confirmed baseline's mean there,
winner - baseline, so negative is better for a metric to minimize. A campaign with no confirmed
winner kept the baseline: its gain is 0. Its search gain (the search's best standing minus the
baseline's search score) is kept beside it, to show the winner's curse.

Prints, and writes under bench/results/ (search-<env>-<preset>.md, .json, .svg; `-quick` before
the extension under --quick):

- per strategy: the confirmed gain's mean and sd over replicates, the mean search gain, the share of
  campaigns whose confirmation says `improved`, trials run (search and races, confirmation), wall time;
- the paired differences evolve, random and specialists minus best-of-n over replicates, with a 95%
  percentile bootstrap interval (10,000 resamples, seeded) and the 95% t interval;
- best-so-far curves: the best search standing among the first k trials of the search budget, mean
  over replicates per strategy (an SVG: matplotlib is not a dependency of the project).

Each finished campaign is written to the .json at once; a run started again with the same settings
skips the campaigns it holds (--fresh starts over).

    python bench/search.py [--envs nanogpt:smoke,digits:cpu] [--trials 12] [--seeds 8]
        [--confirm-top 2] [--confirm-seeds 3] [--race N] [--concurrency 2] [--jobs 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autoresearch.adapters.catalog import CatalogProposer
from autoresearch.adapters.db import open_store
from autoresearch.adapters.sandbox import Sandbox, make_sandbox
from autoresearch.domain.confirmation import RESAMPLES, bootstrap_difference
from autoresearch.domain.model import Direction, TrialRole
from autoresearch.domain.strategies import STRATEGIES
from autoresearch.environment import Environment, find_environment
from autoresearch.services.campaign import CampaignController, create_campaign
from autoresearch.services.runner import TrialRunner, prepare_data
from autoresearch.settings import Settings

RESULTS = Path(__file__).parent / "results"
REFERENCE = "best-of-n"  # the papers' comparison point: every other strategy is measured against it
# Training seeds of replicate r start at r * SEED_STRIDE: its confirmation (+1...) and race (+1000...)
# seeds then never are another replicate's, so replicates share no training run.
SEED_STRIDE = 10_000
COLOURS = {"evolve": "#d62728", "best-of-n": "#1f77b4", "random": "#7f7f7f", "specialists": "#2ca02c"}


@dataclass(frozen=True)
class Plan:
    """What a result file was measured under: a resumed run must match it to reuse its campaigns."""

    environment: str
    preset: str
    trials: int
    confirm_top: int
    confirm_seeds: int
    race: int
    concurrency: int


def run_campaign(
    plan: Plan,
    env: Environment,
    strategy: str,
    replicate: int,
    settings: Settings,
    data_dir: Path,
    sandbox: Sandbox,
    cancel: threading.Event,
) -> dict[str, Any] | None:
    """One campaign, driven as `autoresearch run` drives it; its figures, or None when cancelled."""
    store = open_store(settings.resolved_database_url)
    try:
        campaign = create_campaign(
            store,
            env,
            preset=plan.preset,
            strategy=strategy,
            trials=plan.trials,
            concurrency=plan.concurrency,
            seed=replicate,
            name=f"search-{strategy}-r{replicate}",
            goal="",
            train_seed=replicate * SEED_STRIDE,
            confirm_top=plan.confirm_top,
            confirm_seeds=plan.confirm_seeds,
            race=plan.race,
        )
        runner = TrialRunner(env, plan.preset, settings, sandbox, data_dir)
        proposer = CatalogProposer(env, "", preset=plan.preset)
        controller = CampaignController(store, campaign, env, runner, proposer)
        started = time.perf_counter()
        outcome = controller.run(cancel)
        wall_s = time.perf_counter() - started
        if outcome.stopped_by_user:
            return None
        trials = sorted(store.list_trials(campaign.id), key=lambda t: t.number)
    finally:
        store.close()

    direction = env.spec.metric.direction
    standing = controller.population.scores  # a raced trial stands on its runs' mean
    baseline, best = outcome.baseline, outcome.best
    base_score = standing.get(baseline.id) if baseline is not None else None
    best_score = standing.get(best.id) if best is not None else None
    search_gain = best_score - base_score if best_score is not None and base_score is not None else 0.0

    # The best standing among the first k trials that spend the search budget (searches and races).
    curve: list[float | None] = []
    so_far: float | None = None
    for trial in trials:
        if not trial.spends_search_budget:
            continue
        score = standing.get(trial.id) if trial.is_search else None
        if score is not None and (so_far is None or direction.better(score, so_far)):
            so_far = score
        curve.append(so_far)

    confirmed = outcome.confirmed
    split = confirmed.split if confirmed is not None else ""
    winner = confirmed.winner if confirmed is not None else None
    winner_scores = dict(winner.on(split)) if winner is not None else {}
    base_scores = dict(confirmed.baseline.on(split)) if confirmed is not None else {}
    confirmed_gain = (
        statistics.fmean(winner_scores.values()) - statistics.fmean(base_scores.values())
        if winner_scores and base_scores
        else 0.0  # no confirmed winner: the campaign keeps the baseline
    )
    difference = confirmed.differences.get(winner.trial.id) if confirmed and winner else None
    roles = [t.role for t in trials]
    return {
        "strategy": strategy,
        "replicate": replicate,
        "search_seed": replicate,
        "train_seed": replicate * SEED_STRIDE,
        "split": split,
        "baseline_search_score": base_score,
        "best_search_score": best_score,
        "best_trial": best.number if best is not None else None,
        "search_gain": search_gain,
        "winner_trial": winner.trial.number if winner is not None else None,
        "winner_scores": winner_scores,
        "baseline_scores": base_scores,
        "confirmed_gain": confirmed_gain,
        "interval": [difference.low, difference.high] if difference is not None else None,
        "improved": confirmed.improved if confirmed is not None else False,
        "trials": {
            "search": roles.count(TrialRole.SEARCH),
            "race": roles.count(TrialRole.RACE),
            "confirm": roles.count(TrialRole.CONFIRM),
        },
        "trial_seconds": sum(t.duration_s or 0.0 for t in trials),
        "exhausted": outcome.exhausted,
        "wall_s": wall_s,
        "best_so_far": curve,
    }


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile, by bisection on its CDF (Simpson's rule): one number needs no SciPy."""
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x: float, steps: int = 2000) -> float:
        h = x / steps
        density = [scale * math.pow(1 + (i * h) ** 2 / df, -(df + 1) / 2) for i in range(steps + 1)]
        inner = sum((4 if i % 2 else 2) * density[i] for i in range(1, steps))
        return 0.5 + h / 3 * (density[0] + inner + density[-1])

    low, high = 0.0, 1000.0
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if cdf(middle) < p else (low, middle)
    return (low + high) / 2


def paired(campaigns: Sequence[Mapping[str, Any]], strategy: str) -> dict[str, Any] | None:
    """`strategy` minus the reference, replicate by replicate, on the confirmed gain."""
    gains: dict[str, dict[int, float]] = {}
    for c in campaigns:
        gains.setdefault(c["strategy"], {})[c["replicate"]] = c["confirmed_gain"]
    common = sorted(gains.get(strategy, {}).keys() & gains.get(REFERENCE, {}).keys())
    if not common:
        return None
    ours = {r: gains[strategy][r] for r in common}
    theirs = {r: gains[REFERENCE][r] for r in common}
    diffs = [ours[r] - theirs[r] for r in common]
    boot = bootstrap_difference(ours, theirs, seed=0)
    mean = statistics.fmean(diffs)
    half = (
        t_quantile(0.975, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
        if len(diffs) > 1
        else None
    )
    return {
        "comparison": f"{strategy} - {REFERENCE}",
        "replicates": len(diffs),
        "differences": diffs,
        "mean": mean,
        "bootstrap": [boot.low, boot.high] if boot is not None else None,
        "t": [mean - half, mean + half] if half is not None else None,
    }


def summary(campaigns: Sequence[Mapping[str, Any]], strategy: str) -> dict[str, Any] | None:
    mine = [c for c in campaigns if c["strategy"] == strategy]
    if not mine:
        return None
    gains = [c["confirmed_gain"] for c in mine]
    return {
        "strategy": strategy,
        "campaigns": len(mine),
        "confirmed_gain_mean": statistics.fmean(gains),
        "confirmed_gain_sd": statistics.stdev(gains) if len(gains) > 1 else None,
        "search_gain_mean": statistics.fmean(c["search_gain"] for c in mine),
        "improved_share": sum(c["improved"] for c in mine) / len(mine),
        "search_trials": sum(c["trials"]["search"] + c["trials"]["race"] for c in mine),
        "confirm_trials": sum(c["trials"]["confirm"] for c in mine),
        "wall_s": sum(c["wall_s"] for c in mine),
    }


def mean_curve(campaigns: Sequence[Mapping[str, Any]], strategy: str, length: int) -> list[float | None]:
    """The mean over replicates of the best-so-far; a campaign that ended early keeps its last value."""
    curves = [c["best_so_far"] for c in campaigns if c["strategy"] == strategy and c["best_so_far"]]
    means: list[float | None] = []
    for k in range(length):
        values = [curve[min(k, len(curve) - 1)] for curve in curves]
        known = [v for v in values if v is not None]
        means.append(statistics.fmean(known) if known and len(known) == len(values) else None)
    return means


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def report(result: Mapping[str, Any]) -> str:
    """The markdown table and paired differences of a result file."""
    metric, plan = result["metric"], result["plan"]
    better = "lower" if metric["direction"] == Direction.MINIMIZE else "higher"
    split = next((c["split"] for c in result["campaigns"] if c["split"]), "?")
    trials = sum(sum(c["trials"].values()) for c in result["campaigns"])
    wall = sum(c["wall_s"] for c in result["campaigns"])
    lines = [
        f"## {plan['environment']}/{plan['preset']}: search strategies on confirmed scores",
        "",
        f"{plan['trials']} search trials a campaign (race {plan['race']}: re-runs of a child within noise "
        f"of the best, from that budget), then the top {plan['confirm_top']} and the baseline on "
        f"{plan['confirm_seeds']} fresh seeds; {plan['concurrency']} trials at a time, "
        f"{wall / max(trials, 1):.1f} s of campaign wall time a trial. Gains are winner - baseline in "
        f"{metric['name']} ({metric['unit']}) on the {split} split: {better} is better.",
        "",
        "| strategy | campaigns | confirmed gain (mean ± sd) | search gain (mean) | improved | "
        "trials (search+race / confirm) | wall s (all campaigns) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["summary"]:
        sd = "-" if row["confirmed_gain_sd"] is None else f"{row['confirmed_gain_sd']:.4f}"
        lines.append(
            f"| {row['strategy']} | {row['campaigns']} | {_number(row['confirmed_gain_mean'])} ± {sd} | "
            f"{_number(row['search_gain_mean'])} | {row['improved_share']:.0%} | "
            f"{row['search_trials']} / {row['confirm_trials']} | {row['wall_s']:.0f} |"
        )
    lines += [
        "",
        f"Paired over replicates, on the confirmed gain ({better} is better for the first named):",
        "",
        "| difference | replicates | mean | 95% bootstrap | 95% t |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in result["paired"]:
        boot, t = row["bootstrap"] or [None, None], row["t"] or [None, None]
        lines.append(
            f"| {row['comparison']} | {row['replicates']} | {_number(row['mean'])} | "
            f"[{_number(boot[0])}, {_number(boot[1])}] | [{_number(t[0])}, {_number(t[1])}] |"
        )
    return "\n".join(lines) + "\n"


def svg_curves(result: Mapping[str, Any]) -> str:
    """Mean best-so-far per strategy against the trials of the search budget, as an SVG line chart."""
    plan, metric = result["plan"], result["metric"]
    campaigns = result["campaigns"]
    length: int = plan["trials"]
    curves = {s: mean_curve(campaigns, s, length) for s in STRATEGIES}
    values = [v for curve in curves.values() for v in curve if v is not None]
    width, height, left, right, top, bottom = 720, 440, 80, 150, 40, 50
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5

    def x_of(k: int) -> float:
        return left + (width - left - right) * (k / max(length - 1, 1))

    def y_of(v: float) -> float:
        return top + (height - top - bottom) * (high - v) / (high - low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="14">{plan["environment"]}/{plan["preset"]}: best '
        f"{metric['name']} so far, mean over replicates ({metric['direction']})</text>",
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">'
        "trial of the search budget (searches and races)</text>",
    ]
    for i in range(5):
        v = low + (high - low) * i / 4
        parts.append(
            f'<text x="{left - 6}" y="{y_of(v) + 4:.1f}" text-anchor="end">{v:.4g}</text>'
            f'<line x1="{left}" y1="{y_of(v):.1f}" x2="{width - right}" y2="{y_of(v):.1f}" stroke="#eee"/>'
        )
    for k in range(length):
        if length <= 20 or k % math.ceil(length / 10) == 0:
            parts.append(
                f'<text x="{x_of(k):.1f}" y="{height - bottom + 16}" text-anchor="middle">{k + 1}</text>'
            )
    for i, (strategy, curve) in enumerate(curves.items()):
        colour = COLOURS.get(strategy, "black")
        points = " ".join(f"{x_of(k):.1f},{y_of(v):.1f}" for k, v in enumerate(curve) if v is not None)
        if points:
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        y = top + 20 * i + 10
        parts.append(
            f'<line x1="{width - right + 12}" y1="{y}" x2="{width - right + 32}" y2="{y}" '
            f'stroke="{colour}" stroke-width="2"/><text x="{width - right + 38}" y="{y + 4}">{strategy}</text>'
        )
    return "\n".join([*parts, "</svg>"]) + "\n"


def _write(path: Path, text: str) -> None:
    """Whole or not at all: a run killed mid-write keeps the previous file."""
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def bench_preset(
    name: str, preset: str, args: argparse.Namespace, settings: Settings, sandbox: Sandbox
) -> dict[str, Any]:
    """Every strategy's campaigns on one preset; their figures as they finish, then the report."""
    env = find_environment(name, settings.environment_search_path)
    plan = Plan(
        name,
        env.preset(preset)[0],
        args.trials,
        args.confirm_top,
        args.confirm_seeds,
        args.race,
        args.concurrency,
    )
    stem = RESULTS / f"search-{env.name}-{plan.preset}{'-quick' if args.quick else ''}"
    metric = env.spec.metric
    result: dict[str, Any] = {
        "plan": asdict(plan),
        "metric": {"name": metric.name, "direction": str(metric.direction), "unit": metric.unit},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sandbox": "bwrap" if sandbox.isolated else "none",
        "seed_stride": SEED_STRIDE,
        "campaigns": [],
    }
    json_path = stem.with_suffix(".json")
    if json_path.exists() and not args.fresh:
        earlier = json.loads(json_path.read_text())
        if earlier.get("plan") != result["plan"]:
            raise SystemExit(
                f"{json_path} holds campaigns measured under {earlier.get('plan')}, not {result['plan']}: "
                "pass --fresh to replace them"
            )
        result["campaigns"] = earlier["campaigns"]
    done = {(c["strategy"], c["replicate"]) for c in result["campaigns"]}
    todo = [(s, r) for r in range(args.seeds) for s in args.strategies if (s, r) not in done]
    print(
        f"{env.name}/{plan.preset}: {len(args.strategies)} strategies x {args.seeds} replicates, "
        f"{plan.trials} search trials each (race {plan.race}), then the top {plan.confirm_top} and the "
        f"baseline on {plan.confirm_seeds} fresh seeds; {plan.concurrency} trials at a time, "
        f"{args.jobs} campaign(s) at a time, sandbox {result['sandbox']}; "
        f"{len(done)} campaign(s) already in {json_path.name}, {len(todo)} to run",
        flush=True,
    )
    data_dir = prepare_data(env, settings)
    cancel = threading.Event()
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        futures: dict[Future[dict[str, Any] | None], tuple[str, int]] = {
            pool.submit(run_campaign, plan, env, s, r, settings, data_dir, sandbox, cancel): (s, r)
            for s, r in todo
        }
        try:
            for n, future in enumerate(as_completed(futures), 1):
                figures = future.result()
                if figures is None:
                    continue
                result["campaigns"].append(figures)
                _write(json_path, json.dumps(result, indent=2) + "\n")
                print(
                    f"  [{n}/{len(todo)}] {figures['strategy']:<11} r{figures['replicate']}: confirmed gain "
                    f"{figures['confirmed_gain']:+.4f} (search {figures['search_gain']:+.4f}), "
                    f"{'improved' if figures['improved'] else 'not improved'}, "
                    f"{sum(figures['trials'].values())} trials, {figures['wall_s']:.0f} s "
                    f"({time.perf_counter() - started:.0f} s in all)",
                    flush=True,
                )
        except BaseException:
            cancel.set()  # Ctrl-C: the campaigns in flight stop; those finished are in the .json
            for pending in futures:
                pending.cancel()
            raise
    in_range = [c for c in result["campaigns"] if c["replicate"] < args.seeds]
    result["summary"] = [row for s in STRATEGIES if (row := summary(in_range, s)) is not None]
    result["paired"] = [row for s in STRATEGIES if s != REFERENCE and (row := paired(in_range, s))]
    result["resamples"] = RESAMPLES
    _write(json_path, json.dumps(result, indent=2) + "\n")
    table = report({**result, "campaigns": in_range})
    _write(stem.with_suffix(".md"), table)
    _write(stem.with_suffix(".svg"), svg_curves({**result, "campaigns": in_range}))
    print("\n" + table)
    print(f"wrote {stem}.md, .json and .svg")
    return result


def _presets(text: str) -> Iterator[tuple[str, str]]:
    for item in text.split(","):
        name, _, preset = item.strip().partition(":")
        if not (name and preset):
            raise SystemExit(f"--envs: {item!r} is not ENV:PRESET (nanogpt:smoke, say)")
        yield name, preset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", default="nanogpt:smoke,digits:cpu", help="ENV:PRESET,... to measure")
    parser.add_argument("--trials", type=int, default=12, help="search budget of each campaign")
    parser.add_argument("--seeds", type=int, default=8, help="campaign replicates per strategy")
    parser.add_argument("--confirm-top", type=int, default=2)
    parser.add_argument("--confirm-seeds", type=int, default=3)
    parser.add_argument(
        "--race",
        type=int,
        default=Settings.model_fields["race"].default,
        help="re-runs of a child within noise of a new best (the product's default unless given)",
    )
    parser.add_argument("--concurrency", type=int, default=2, help="trials at a time within a campaign")
    parser.add_argument("--jobs", type=int, default=1, help="campaigns at a time")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 replicates of 4 trials, top 1 on 2 seeds: a check of the bench",
    )
    parser.add_argument("--fresh", action="store_true", help="ignore the campaigns the .json already holds")
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help="the strategies to run (best-of-n, the reference, is always one); those already measured "
        "are reported whatever this says",
    )
    args = parser.parse_args()
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if unknown := [s for s in args.strategies if s not in STRATEGIES]:
        raise SystemExit(f"--strategies: {unknown[0]!r} is not one of {', '.join(STRATEGIES)}")
    if REFERENCE not in args.strategies:
        args.strategies.append(REFERENCE)
    if args.quick:
        args.seeds, args.trials, args.confirm_top, args.confirm_seeds = 2, 4, 1, 2
    presets = list(_presets(args.envs))
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ar-bench-search-") as scratch:
        os.chmod(scratch, 0o755)  # a root service's trials run as uids of their own: they must reach it
        # One SQLite file for every campaign (WAL: campaigns run with --jobs write to it at once).
        settings = Settings(
            data_dir=Path(scratch), database_url=f"sqlite:///{scratch}/bench.db", keep_trial_dirs=False
        )
        sandbox = make_sandbox(settings.sandbox, settings.python)
        for name, preset in presets:
            bench_preset(name, preset, args, settings, sandbox)


if __name__ == "__main__":
    main()
