"""`autoresearch env check`: run an environment's baseline as a campaign would, and report what a
campaign on it needs to know (the metric's mean and spread over seeds, the noise floor a promotion
must clear; time and memory per run) and every problem found with the contract, the catalog, the
evaluator or the sandbox. Each problem is one line that says what to fix."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import pickle
import secrets
import statistics
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.adapters.catalog import load_catalog
from autoresearch.adapters.sandbox import UNSANDBOXED, make_sandbox
from autoresearch.domain.diffs import apply_diff
from autoresearch.domain.model import TrialStatus
from autoresearch.environment import Environment
from autoresearch.errors import AutoresearchError
from autoresearch.services.runner import TrialJob, TrialRunner, prepare_data
from autoresearch.settings import Settings
from autoresearch.untrusted import read_text, regular_files

_READABLE = "READABLE "  # what the probe prints before each protected path it could read


@dataclass(frozen=True)
class BaselineRun:
    seed: int
    score: float | None
    outcome: str  # "succeeded", or the failure label
    reason: str
    seconds: float
    peak_rss_mb: float | None


@dataclass
class CheckReport:
    environment: str
    preset: str
    metric: str
    protected: dict[str, str] = field(default_factory=dict)  # protected file -> sha256
    techniques: int = 0
    test_split: bool = False  # data.test is set: confirmations score on held-out data the search never saw
    runs: list[BaselineRun] = field(default_factory=list)
    repeat: tuple[dict[str, float], dict[str, float]] | None = None  # two verdicts on one checkpoint
    problems: list[str] = field(default_factory=list)

    @property
    def scores(self) -> list[float]:
        return [r.score for r in self.runs if r.score is not None]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None

    @property
    def spread(self) -> float | None:
        """The sample standard deviation of the baseline's score over seeds."""
        return statistics.stdev(self.scores) if len(self.scores) > 1 else None


Progress = Callable[[str], None]


def check_environment(
    env: Environment, preset: str | None, settings: Settings, *, seeds: int = 3, progress: Progress = print
) -> CheckReport:
    preset_name, _ = env.preset(preset)
    report = CheckReport(env.name, preset_name, env.spec.metric.name)
    report.protected = dict(env.protected_digests)
    report.test_split = env.has_test_split
    _check_patterns(env, report)
    _check_catalog(env, report)
    try:
        sandbox = make_sandbox(settings.sandbox, settings.python)
    except AutoresearchError as exc:
        report.problems.append(str(exc))
        return report
    if not sandbox.isolated:
        report.problems.append(f"{UNSANDBOXED}: nothing hides the evaluator from them")
    progress("preparing data")
    try:
        data_dir = prepare_data(env, settings)
    except AutoresearchError as exc:
        report.problems.append(str(exc))
        return report
    runner = TrialRunner(env, preset_name, settings, sandbox, data_dir)
    baseline = env.read_editable()
    first_ok: TrialJob | None = None
    for seed in range(seeds):
        progress(f"baseline, seed {seed} ({seed + 1} of {seeds})")
        job = TrialJob(0, 0, seed, seed, baseline, folder=f"check-{env.name}-{seed}")
        result = runner.run(job)
        ok = result.status is TrialStatus.SUCCEEDED
        report.runs.append(
            BaselineRun(
                seed=seed,
                score=result.score,
                outcome="succeeded" if ok else str(result.label),
                reason=result.reason,
                seconds=result.duration_s or 0.0,
                peak_rss_mb=result.metrics.get("train_peak_rss_mb"),
            )
        )
        if not ok:
            report.problems.append(f"the baseline failed with seed {seed}: {result.label}: {result.reason}")
        elif first_ok is None:
            first_ok = job
    if first_ok is not None:
        progress("the evaluator, twice on one checkpoint")
        _check_repeat(runner, first_ok, report)
        progress("the evaluator, on outputs that carry code")
        _check_pickle_probe(runner, first_ok, report)
    progress("what trial code can read")
    _check_probe(env, runner, data_dir, settings, report)
    return report


def _check_patterns(env: Environment, report: CheckReport) -> None:
    files = env.spec.files
    for key, patterns in (("protected", files.protected), ("private", files.private)):
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(f, pattern) for f in env.protected_files):
                report.problems.append(f"files.{key}: {pattern!r} matches no file in {env.root}")


def _check_catalog(env: Environment, report: CheckReport) -> None:
    try:
        techniques, _ = load_catalog(env)
    except AutoresearchError as exc:
        report.problems.append(str(exc))
        return
    report.techniques = len(techniques)
    baseline = env.read_editable()
    for technique in techniques:
        try:
            apply_diff(baseline, technique.diff)
        except AutoresearchError as exc:
            report.problems.append(
                f"catalog: technique {technique.key!r} does not apply to the baseline: {exc}"
            )


def _check_repeat(runner: TrialRunner, job: TrialJob, report: CheckReport) -> None:
    """Two evaluations of one checkpoint, given the same inputs, must agree exactly on every figure (the
    score, and what gates and caps read): promotion compares them, and an evaluator with noise of its
    own would promote by luck."""
    verdicts = []
    for _ in range(2):
        phase, verdict = runner.evaluate_again(job, train_seconds=1.0)
        if phase.exit_code != 0 or report.metric not in verdict:
            report.problems.append(f"evaluating one checkpoint again failed: {phase.tail.strip()[-300:]}")
            return
        verdicts.append(verdict)
    first, again = verdicts
    report.repeat = (first, again)
    differing = [name for name in sorted(first.keys() | again.keys()) if first.get(name) != again.get(name)]
    if differing:
        name = report.metric if report.metric in differing else differing[0]
        more = f" ({len(differing) - 1} more figures differ)" if len(differing) > 1 else ""
        report.problems.append(
            f"the evaluator gave one checkpoint {name} {first.get(name)!r}, then {again.get(name)!r}{more}: "
            "fix its seeds and its order of evaluation"
        )


# Files an evaluator might unpickle (torch.load, pickle, joblib, numpy with allow_pickle).
_PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib", ".npy", ".npz"}


def _check_pickle_probe(runner: TrialRunner, job: TrialJob, report: CheckReport) -> None:
    """Plant a pickle that prints a marker in every file the baseline's training left that a loader could
    unpickle, evaluate again, and report an evaluator that ran it: it would run code a trial wrote."""
    marker = f"AUTORESEARCH-PICKLE-PROBE-{secrets.token_hex(6)}"
    out = runner.trial_dir(job) / "out"
    planted = _plant_pickles(out, marker)
    if not planted:
        return
    runner.evaluate_again(job, train_seconds=1.0)
    if marker in read_text(runner.trial_dir(job) / "evaluate.log"):
        report.problems.append(
            f"the evaluator runs code from what training left: a pickle planted in out/{planted[0]} ran; "
            "load torch.export archives with autoresearch.exported.load_exported_program, and weights "
            "as safetensors or raw arrays"
        )


class _Probe:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"import os; os.write(2, b'{self.marker}\\n')",)


def _plant_pickles(out: Path, marker: str) -> list[str]:
    """Put a pickle that writes `marker` to stderr wherever a file under `out` could be unpickled: raw
    files with a pickle's usual suffix, and inside zip archives (torch.save's data.pkl, torch.export's
    weights and sample inputs). The relative paths of the files changed."""
    payload = pickle.dumps(_Probe(marker))
    planted = []
    for path, _ in regular_files(out):
        if zipfile.is_zipfile(path):
            changed = _plant_in_archive(path, payload)
        elif path.suffix in _PICKLE_SUFFIXES:
            path.write_bytes(payload)
            changed = True
        else:
            changed = False
        if changed:
            planted.append(path.relative_to(out).as_posix())
    return planted


def _plant_in_archive(path: Path, payload: bytes) -> bool:
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    changed = False
    for name in list(entries):
        if name.endswith(("_weights_config.json", "_constants_config.json")):
            config = json.loads(entries[name])
            folder = name.rsplit("/", 1)[0]
            for meta in config.get("config", {}).values():
                meta["use_pickle"] = True
                entries[f"{folder}/{meta['path_name']}"] = payload
            entries[name] = json.dumps(config).encode()
            changed = True
        elif name.endswith(".pkl") or "/sample_inputs/" in name:
            entries[name] = payload
            changed = True
    if changed:
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in entries.items():
                archive.writestr(name, data)
    return changed


def _check_probe(
    env: Environment, runner: TrialRunner, data_dir: Path, settings: Settings, report: CheckReport
) -> None:
    """Train a probe instead of the recipe: it tries to read every private file and every file of the
    evaluation data (the test split's too), and says which it could."""
    script = _train_script(env)
    if script is None:
        report.problems.append("commands.train runs no editable file: trial code could not be probed")
        return
    evaluate_only = {*env.spec.data.evaluate, *env.spec.data.test} - set(env.spec.data.train)
    secrets = [env.root / f for f in env.protected_files if f not in env.trial_files]
    secrets += [data_dir / f for f in sorted(evaluate_only)]
    secrets += sorted(p for p in settings.data_dir.iterdir() if p.is_file())  # the database, the registry
    probe = (
        "import os, json\n"
        f"for path in json.loads({json.dumps(json.dumps([str(p) for p in secrets]))}):\n"
        "    try:\n"
        "        if os.path.isdir(path):\n"
        "            os.listdir(path)\n"
        "        else:\n"
        "            open(path, 'rb').read(1)\n"
        f"        print({_READABLE!r} + path)\n"
        "    except OSError:\n"
        "        pass\n"
    )
    code = dict(env.read_editable()) | {script: probe}
    job = TrialJob(0, 0, 0, 0, code, folder=f"check-{env.name}-probe")
    result = runner.run(job)
    log = read_text(runner.trial_dir(job) / "train.log")  # all of it: the trial's log tail is cut short
    for line in (log or result.log_tail).splitlines():
        if line.startswith(_READABLE):
            report.problems.append(f"trial code can read {line.removeprefix(_READABLE)}")


def _train_script(env: Environment) -> str | None:
    """The editable file the train command runs."""
    return next((part for part in env.spec.commands.train if part in env.editable_files), None)


def report_dict(report: CheckReport) -> dict[str, object]:
    return {
        "environment": report.environment,
        "preset": report.preset,
        "metric": report.metric,
        "mean": report.mean,
        "spread": report.spread,
        "runs": [dataclasses.asdict(run) for run in report.runs],
        "evaluator_repeat": list(report.repeat) if report.repeat else None,
        "protected": report.protected,
        "techniques": report.techniques,
        "test_split": report.test_split,
        "problems": report.problems,
    }
