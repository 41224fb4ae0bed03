"""Run one trial: a working copy of the parent's code plus the patch, training then evaluation.

Each phase is a subprocess in its own process group and sandbox, under the trial's wall-clock
budget (the whole group is killed at the limit), its memory and disk budgets, with its output
capped. Training sees the training data and its folders `code/` and `out/`, nothing else; the
evaluator runs from the pristine environment, reads what training left as untrusted data, and owns
the score. The logs sit beside those folders, where no phase can write. Protected files are checked
by sha256 before and after training, and nothing training left is followed by the host
(`autoresearch.untrusted`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from autoresearch.adapters.artifacts import ArtifactStore, bundle_key, code_bundle, trial_key
from autoresearch.adapters.sandbox import (
    Limits,
    MemoryCgroup,
    Mounts,
    Sandbox,
    die_with_parent,
    first_private,
    limit_file_size,
)
from autoresearch.domain.model import FailureLabel, Trial, TrialResult
from autoresearch.environment import Environment, Preset
from autoresearch.errors import ConfigError
from autoresearch.settings import PACKAGE_DIR, Settings, bundled_path
from autoresearch.untrusted import (
    NotARegularFile,
    disk_usage,
    first_special_file,
    open_regular,
    read_regular,
    read_text,
    regular_files,
    sha256_regular,
)

EVALUATOR_REFUSED = 3  # an evaluator exits with this when the model breaks a rule of the environment
_OOM_PATTERNS = re.compile(r"CUDA out of memory|OutOfMemoryError|MemoryError|Cannot allocate memory")
_DISK_PATTERNS = re.compile(r"No space left on device|File too large|Disk quota exceeded")
_POLL_S = 0.1


@dataclass(frozen=True)
class TrialJob:
    """Everything a runner needs to execute one trial; the code is the full editable file set."""

    campaign_id: int
    trial_id: int
    number: int
    seed: int
    code: Mapping[str, str]
    folder: str = ""  # under the campaign's trial folders; default: the trial's number
    devices: tuple[str, ...] | None = None  # the GPUs placed for it; None: what this process sees
    certify: bool = False  # also score it on the environment's test split (confirmation runs only)

    @classmethod
    def of(cls, trial: Trial, code: Mapping[str, str], devices: tuple[str, ...] | None = None) -> TrialJob:
        """The job that runs a recorded trial."""
        return cls(
            trial.campaign_id,
            trial.id,
            trial.number,
            trial.seed,
            code,
            devices=devices,
            certify=trial.certifies,
        )


@dataclass(frozen=True)
class PhaseOutcome:
    exit_code: int | None
    seconds: float
    timed_out: bool = False
    cancelled: bool = False
    oom: bool = False
    over_disk: bool = False  # it wrote past its disk budget, a file past the size limit, or filled /tmp
    tail: str = ""
    peak_rss_mb: float | None = None  # of the phase's process tree, sampled; None if it ended before a sample


def code_hash(code: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for path in sorted(code):
        digest.update(path.encode() + b"\0" + code[path].encode() + b"\0")
    return digest.hexdigest()


def parse_summary(text: str) -> dict[str, float]:
    """The `key: value` lines after the last `---` line, numbers only."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "---"]
    if not starts:
        return {}
    summary: dict[str, float] = {}
    for line in lines[starts[-1] + 1 :]:
        key, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            summary[key.strip()] = float(value.strip().replace(",", ""))
        except ValueError:
            continue
    return summary


_PROGRESS_LINE = re.compile(r"^\s*step[\s:=]+(\d+)\b(.*)$")
_PROGRESS_PAIR = re.compile(r"([A-Za-z_][\w/.]*)[\s:=]+(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.])")
CURVE_POINTS = 200  # at most this many points of a training curve are kept


def parse_progress(text: str, limit: int = CURVE_POINTS) -> tuple[dict[str, float], ...]:
    """The training curve from progress lines such as `step 100  loss 3.2100  12.3s`: one point per
    line, {"step": 100, "loss": 3.21}; evenly thinned to `limit` points, the last one always kept."""
    points = []
    for line in text.splitlines():
        match = _PROGRESS_LINE.match(line)
        if match is None:
            continue
        values = {key: float(value) for key, value in _PROGRESS_PAIR.findall(match.group(2))}
        if values:
            points.append({"step": float(match.group(1)), **values})
    if len(points) > limit:
        stride = (len(points) - 1) / (limit - 1)
        points = [points[round(i * stride)] for i in range(limit)]
    return tuple(points)


class TrialRunner:
    """Runs trials of one environment preset; safe to call from several threads at once."""

    def __init__(
        self,
        env: Environment,
        preset_name: str,
        settings: Settings,
        sandbox: Sandbox,
        data_dir: Path,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        self.env = env
        self.preset_name = preset_name
        self.preset: Preset = env.spec.presets[preset_name]
        self.settings = settings
        self.sandbox = sandbox
        self.data_dir = data_dir
        self.artifacts = artifacts
        if sandbox.drops_uid:  # trials run as uids of their own: what they read must be open to them
            for path in (*self.preset.input_paths, *(data_dir / f for f in env.spec.data.train)):
                if (private := first_private(path)) is not None:
                    raise ConfigError(
                        f"{private} is readable by its owner only, and each trial runs as an unprivileged "
                        f"uid of its own (the service runs as root): chmod -R a+rX {path}, or run the "
                        "service as a user other than root"
                    )

    def trial_dir(self, job: TrialJob) -> Path:
        return self.settings.trials_dir / str(job.campaign_id) / (job.folder or f"{job.number:05d}")

    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        cancel = cancel or threading.Event()
        started = time.monotonic()
        deadline = started + self.preset.budget.wall_clock_s
        root = self.trial_dir(job)
        code_dir, out_dir = root / "code", root / "out"
        shutil.rmtree(root, ignore_errors=True)
        out_dir.mkdir(parents=True)
        self._write_working_copy(job, code_dir)
        if self._changed_protected_files(code_dir):  # before: the environment itself, not the candidate
            raise ConfigError(f"{self.env.root}: protected files changed on disk since the campaign started")
        digest = code_hash(job.code)
        _hand_over((code_dir, out_dir), self.sandbox.trial_uid(str(root)))

        train = self._run_phase(
            "train",
            self._argv(self.env.spec.commands.train, job, out_dir),
            cwd=code_dir,
            mounts=Mounts(
                writable=(code_dir, out_dir),
                readable=(*(self.data_dir / f for f in self.env.spec.data.train), *self.preset.input_paths),
                hidden=self._hidden,
                gpu=self._gpu,
            ),
            log=root / "train.log",
            deadline=deadline,
            cancel=cancel,
            job=job,
            quota=(code_dir, out_dir),
        )
        failure = self._phase_failure("training", train) or self._tampering(code_dir, out_dir)
        if failure is not None:
            return self._finish(job, root, started, train, None, failure, {}, digest)

        evaluate, verdict = self._evaluate(job, train.seconds, deadline, cancel)
        failure = self._phase_failure("evaluation", evaluate) or self._judge(verdict)
        test: tuple[PhaseOutcome, float | None] | None = None
        if failure is None and job.certify and self.env.has_test_split:
            phase, test_verdict = self._evaluate(job, train.seconds, deadline, cancel, split="test")
            refused = self._phase_failure("evaluation on the test split", phase) or self._judge(test_verdict)
            # Scored on the search's split, the trial stands; a test split that refuses it leaves no test score.
            test = phase, None if refused else test_verdict[self.env.spec.metric.name]
        return self._finish(job, root, started, train, evaluate, failure, verdict, digest, test)

    def evaluate_again(self, job: TrialJob, train_seconds: float) -> tuple[PhaseOutcome, dict[str, float]]:
        """The evaluator run once more on what the job's training left (its folder must still be there):
        the phase and its verdict."""
        deadline = time.monotonic() + self.preset.budget.wall_clock_s
        return self._evaluate(job, train_seconds, deadline, threading.Event())

    def _evaluate(
        self,
        job: TrialJob,
        train_seconds: float,
        deadline: float,
        cancel: threading.Event,
        split: str = "val",
    ) -> tuple[PhaseOutcome, dict[str, float]]:
        """The evaluator on what training left, shown the data of one split: `val`, the search's, or `test`,
        which only confirmation runs evaluate."""
        root = self.trial_dir(job)
        out_dir = root / "out"
        data = self.env.spec.data.test if split == "test" else self.env.spec.data.evaluate
        log = root / ("evaluate.log" if split == "val" else f"evaluate-{split}.log")
        seconds = f"{train_seconds:.3f}"
        phase = self._run_phase(
            "evaluate",
            self._argv(self.env.spec.commands.evaluate, job, out_dir, train_seconds=seconds, split=split),
            cwd=self.env.root,
            mounts=Mounts(
                readable=(
                    self.env.root,
                    out_dir,
                    *(self.data_dir / f for f in data),
                    *self.preset.input_paths,
                    PACKAGE_DIR,  # evaluators load what training left through autoresearch.exported
                ),
                hidden=self._hidden,
                gpu=self._gpu,
            ),
            log=log,
            deadline=deadline,
            cancel=cancel,
            job=job,
        )
        return phase, parse_summary(read_text(log))

    @property
    def _hidden(self) -> tuple[Path, ...]:
        """Folders emptied where they fall inside what a phase is shown: the interpreter's site-packages
        holds a copy of the bundled environments, held-out data included, in a wheel or an editable
        install alike."""
        installed = (folder / "autoresearch" / "_bundled" for folder in self.sandbox.host_paths)
        return (self.settings.data_dir, self.env.root, bundled_path("environments"), *installed)

    @property
    def _memory_mb(self) -> int:
        return self.preset.budget.memory_mb or self.settings.trial_memory_mb

    @property
    def _disk_mb(self) -> int:
        return self.preset.budget.disk_mb or self.settings.trial_disk_mb

    @property
    def _gpu(self) -> bool:
        return self.env.resources(self.preset).gpu > 0

    def _keep_artifacts(self, job: TrialJob, root: Path, digest: str) -> None:
        """The code bundle (once per distinct code), the phases' logs and, when it is small enough, what
        training left in its output folder (the checkpoint), in the artifact store."""
        assert self.artifacts is not None
        if not self.artifacts.exists(bundle_key(digest)):
            self.artifacts.put(bundle_key(digest), code_bundle(job.code))
        for name in ("train.log", "evaluate.log", "evaluate-test.log"):
            with contextlib.suppress(OSError):
                self.artifacts.put(trial_key(job.campaign_id, job.number, name), read_regular(root / name))
        outputs = sorted(regular_files(root / "out"))  # regular files only: never a link or a FIFO
        if sum(info.st_size for _, info in outputs) <= self.settings.checkpoint_cap_mb * 1e6:
            for path, _ in outputs:
                name = f"out/{path.relative_to(root / 'out').as_posix()}"
                with contextlib.suppress(OSError):  # training's processes are gone; a file may not be
                    self.artifacts.put(trial_key(job.campaign_id, job.number, name), read_regular(path))

    # -- steps ----------------------------------------------------------------------------------
    def _changed_protected_files(self, code_dir: Path) -> list[str]:
        """Protected files of the working copy whose sha256 differs from the environment's, or that are no
        longer regular files (a link, a FIFO or a device is never read through)."""
        return [f for f in self.env.trial_files if _digest(code_dir / f) != self.env.protected_digests[f]]

    def _tampering(self, code_dir: Path, out_dir: Path) -> tuple[FailureLabel, str] | None:
        """What training did to the folders the host reads afterwards, if it broke a rule."""
        for name, folder in (("code", code_dir), ("out", out_dir)):
            if not folder.is_dir() or folder.is_symlink():
                return FailureLabel.ILLEGAL_EDIT, f"training replaced its {name} folder with something else"
        if changed := self._changed_protected_files(code_dir):
            return FailureLabel.ILLEGAL_EDIT, f"training changed protected file {changed[0]}"
        if special := first_special_file(out_dir):  # the evaluator reads out/ as data: files only
            what = f"a link to {os.readlink(special)}" if special.is_symlink() else "not a regular file"
            return FailureLabel.ILLEGAL_EDIT, f"training left out/{special.relative_to(out_dir)}, {what}"
        return None

    def _write_working_copy(self, job: TrialJob, code_dir: Path) -> None:
        for rel, text in job.code.items():
            target = code_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        for rel in self.env.trial_files:
            target = code_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.env.root / rel, target)

    def _argv(self, template: list[str], job: TrialJob, out_dir: Path, **more: str) -> list[str]:
        values = {
            "python": self.settings.python,
            "preset": self.preset_name,
            "seed": str(job.seed),
            "data": str(self.data_dir),
            "out": str(out_dir),
            **more,
        }
        return [part.format_map(values) for part in template]

    def _child_env(self, job: TrialJob, phase: str, root: Path) -> dict[str, str]:
        threads = str(self.env.resources(self.preset).cpu_threads)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/tmp" if self.sandbox.isolated else str(_fresh_folder(root / f"home-{phase}")),
            "USER": "trial",  # getpass (torch's compile cache) asks, and a trial's uid has no account
            "LOGNAME": "trial",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "PYTHONHASHSEED": str(job.seed),
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
        }
        if phase == "evaluate":  # evaluators import autoresearch.exported, wherever the trial interpreter is
            env["PYTHONPATH"] = str(PACKAGE_DIR.parent)
        if self.env.resources(self.preset).gpu == 0:
            env["CUDA_VISIBLE_DEVICES"] = ""
        elif job.devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(job.devices)
        elif "CUDA_VISIBLE_DEVICES" in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        return env

    def _run_phase(
        self,
        phase: str,
        argv: list[str],
        *,
        cwd: Path,
        mounts: Mounts,
        log: Path,
        deadline: float,
        cancel: threading.Event,
        job: TrialJob,
        quota: tuple[Path, ...] = (),
    ) -> PhaseOutcome:
        started = time.monotonic()
        memory_mb = self._memory_mb
        disk_bytes = self._disk_mb * 2**20
        limits = Limits(
            processes=self.settings.trial_processes,
            file_bytes=disk_bytes,
            tmp_bytes=self.settings.trial_tmp_mb * 2**20,
        )
        cgroup = MemoryCgroup(f"c{job.campaign_id}-t{job.number}-{phase}-{os.getpid()}", memory_mb)

        def in_child() -> None:
            die_with_parent()
            cgroup.enter()
            if not self.sandbox.isolated:
                limit_file_size(limits.file_bytes)

        root = log.parent
        # Any preexec function makes Python fork instead of vfork, slower for a large parent; bubblewrap
        # already dies with its parent, so the hook runs only for a cgroup or an unsandboxed child.
        needs_hook = cgroup.active or not self.sandbox.isolated
        try:
            log_fd = open_regular(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        except OSError as exc:
            cgroup.remove()
            return PhaseOutcome(exit_code=None, seconds=0.0, tail=f"could not write the log {log}: {exc}")
        try:
            proc = subprocess.Popen(
                self.sandbox.wrap(argv, cwd, mounts, limits, self.sandbox.trial_uid(str(root))),
                cwd=cwd,
                env=self._child_env(job, phase, root),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=in_child if needs_hook else None,
            )
        except OSError as exc:
            with os.fdopen(log_fd, "wb") as out:
                out.write(f"could not start {argv[0]}: {exc}\n".encode())
            cgroup.remove()
            return PhaseOutcome(exit_code=None, seconds=0.0, tail=f"could not start {argv[0]}: {exc}")
        assert proc.stdout is not None
        capture = _LogCapture(proc.stdout, log_fd, self.settings.log_cap_bytes, self.settings.log_tail_bytes)
        watch = _Watch(proc.pid, None if cgroup.active else memory_mb, quota, disk_bytes)
        timed_out, cancelled = _wait(proc, deadline, cancel, watch)
        if timed_out or cancelled or watch.over:
            _kill_group(proc)
        capture.finish()
        failed = bool(proc.returncode)
        oom = (
            watch.over == "memory"
            or cgroup.hit_limit()
            or (failed and bool(_OOM_PATTERNS.search(capture.tail)))
        )
        over_disk = watch.over == "disk" or (
            failed and (proc.returncode == -signal.SIGXFSZ or bool(_DISK_PATTERNS.search(capture.tail)))
        )
        cgroup.remove()
        return PhaseOutcome(
            exit_code=proc.returncode,
            seconds=time.monotonic() - started,
            timed_out=timed_out,
            cancelled=cancelled,
            oom=oom,
            over_disk=over_disk,
            tail=capture.tail,
            peak_rss_mb=watch.peak_mb,
        )

    def _phase_failure(self, what: str, phase: PhaseOutcome) -> tuple[FailureLabel, str] | None:
        budget = self.preset.budget.wall_clock_s
        if phase.cancelled:
            return FailureLabel.CANCELLED, f"stopped by the user during {what}"
        if phase.timed_out:
            return FailureLabel.TIMEOUT, f"{what} ran past the wall-clock budget of {budget:g} s"
        if phase.oom:
            return FailureLabel.OOM, f"{what} ran out of memory (its budget is {self._memory_mb:,} MB)"
        if phase.over_disk:
            return FailureLabel.DISK, (
                f"{what} wrote past its disk budget ({self._disk_mb:,} MB for its folders, "
                f"{self.settings.trial_tmp_mb:,} MB for /tmp): {_last_line(phase.tail)}"
            )
        if phase.exit_code == EVALUATOR_REFUSED and what == "evaluation":
            return FailureLabel.GATE_MISS, _last_line(phase.tail) or "the evaluator refused the model"
        if phase.exit_code != 0:
            return (
                FailureLabel.CRASH,
                f"{what} exited with {_describe_exit(phase.exit_code)}: {_last_line(phase.tail)}",
            )
        return None

    def _judge(self, verdict: Mapping[str, float]) -> tuple[FailureLabel, str] | None:
        metric = self.env.spec.metric.name
        if metric not in verdict:
            return FailureLabel.CRASH, f"the evaluator printed no {metric}"
        score, budget, gates = verdict[metric], self.preset.budget, self.env.spec.gates
        if not math.isfinite(score):
            return FailureLabel.GATE_MISS, f"{metric} is {score}, not a finite number"
        caps = ((budget.max_params, "params", "parameters"), (budget.max_bytes, "artifact_bytes", "bytes"))
        for cap, key, what in caps:
            if cap is not None and verdict.get(key, 0) > cap:
                return FailureLabel.SIZE_CAP, f"{verdict[key]:,.0f} {what}, over the cap of {cap:,}"
        if gates.max_metric is not None and not score <= gates.max_metric:
            return FailureLabel.GATE_MISS, f"{metric} {score:g} is above the gate {gates.max_metric:g}"
        if gates.min_metric is not None and not score >= gates.min_metric:
            return FailureLabel.GATE_MISS, f"{metric} {score:g} is below the gate {gates.min_metric:g}"
        return None

    def _finish(
        self,
        job: TrialJob,
        root: Path,
        started: float,
        train: PhaseOutcome,
        evaluate: PhaseOutcome | None,
        failure: tuple[FailureLabel, str] | None,
        verdict: Mapping[str, float],
        digest: str,
        test: tuple[PhaseOutcome, float | None] | None = None,
    ) -> TrialResult:
        tail = f"== train ==\n{train.tail}" + (f"\n== evaluate ==\n{evaluate.tail}" if evaluate else "")
        if test is not None:
            tail += f"\n== evaluate on the test split ==\n{test[0].tail}"
        last = evaluate or train
        details = {
            # What training printed is shown, never scored: the evaluator's verdict wins every clash.
            "metrics": parse_summary(train.tail) | dict(verdict) | _measured(train),
            "curve": parse_progress(read_text(root / "train.log")),
            "duration_s": time.monotonic() - started,
            "exit_code": last.exit_code,
            "log_tail": tail[-self.settings.log_tail_bytes :],
            "code_hash": digest,
            "test_score": test[1] if test is not None else None,
            "record": self.record(job, digest),
        }
        if self.artifacts is not None and not job.folder:  # preflight runs keep nothing
            self._keep_artifacts(job, root, digest)
        if not self.settings.keep_trial_dirs:
            shutil.rmtree(root, ignore_errors=True)
        if failure is not None:
            return TrialResult.failed(failure[0], failure[1], **details)
        return TrialResult.scored(verdict[self.env.spec.metric.name], **details)

    def record(self, job: TrialJob, code_digest: str) -> dict[str, Any]:
        """What a trial ran, on what: enough to run it again and to tell why a re-run differs."""
        return {
            "environment": self.env.name,
            "environment_digest": self.env.digest,
            "preset": self.preset_name,
            "seed": job.seed,
            "code_hash": code_digest,
            "sandbox": self.sandbox.mode,
            **self._platform,
        }

    @cached_property
    def _platform(self) -> dict[str, Any]:
        return platform_record(self.settings.python, gpu=self._gpu)


def platform_record(python: str, *, gpu: bool) -> dict[str, Any]:
    """The trial interpreter's Python and package versions, the CPU and, for a GPU preset, the GPUs and
    driver; what cannot be read is left out."""
    found: dict[str, Any] = {"machine": platform.machine(), "cpu": _cpu_model(), "cpus": os.cpu_count()}
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        answer = subprocess.run(
            [python, "-c", _VERSIONS], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        found |= json.loads(answer)
    if gpu:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            answer = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
            rows = [line.split(", ") for line in answer.splitlines() if line.strip()]
            found["gpus"] = [row[0] for row in rows]
            found["gpu_driver"] = rows[0][-1] if rows else ""
    return found


_VERSIONS = """
import json, platform
from importlib import metadata
packages = {}
for name in ("torch", "numpy", "transformers", "safetensors"):
    try:
        packages[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print(json.dumps({"python": platform.python_version(), "packages": packages}))
"""


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor()


def _measured(train: PhaseOutcome) -> dict[str, float]:
    """What the runner itself measured of training, kept with the trial's metrics: these, not what
    training printed, are what a compute budget counts."""
    measured = {"train_seconds": round(train.seconds, 3)}
    if train.peak_rss_mb is not None:
        measured["train_peak_rss_mb"] = round(train.peak_rss_mb, 1)
    return measured


def _digest(path: Path) -> str:
    try:
        return sha256_regular(path)
    except NotARegularFile:
        return "not a regular file"
    except OSError:
        return "missing"


def _hand_over(folders: tuple[Path, ...], uid: int | None) -> None:
    """Give a trial's writable folders to the uid it runs as (a root service's trials have their own)."""
    if uid is None:
        return
    for folder in folders:
        for path in (folder, *(Path(d) / n for d, dirs, files in os.walk(folder) for n in (*dirs, *files))):
            os.chown(path, uid, uid, follow_symlinks=False)


def _fresh_folder(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


class _LogCapture:
    """Copies a child's output to an open file, keeping the first `cap` bytes and the last `tail` bytes."""

    def __init__(self, stream: object, fd: int, cap: int, tail: int) -> None:
        self._stream = stream
        self._fd = fd
        self._cap = cap
        self._tail: deque[bytes] = deque()
        self._tail_bytes = 0
        self._tail_cap = tail
        self._dropped = 0
        self.tail = ""
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        written = 0
        with os.fdopen(self._fd, "wb") as out:
            for chunk in iter(lambda: self._stream.read1(65536), b""):  # type: ignore[attr-defined]
                keep = chunk[: max(0, self._cap - written)]
                out.write(keep)
                written += len(keep)
                self._dropped += len(chunk) - len(keep)
                self._tail.append(chunk)
                self._tail_bytes += len(chunk)
                while self._tail_bytes - len(self._tail[0]) >= self._tail_cap:
                    self._tail_bytes -= len(self._tail.popleft())
            tail = b"".join(self._tail)[-self._tail_cap :]
            if self._dropped:
                out.write(f"\n[... {self._dropped:,} bytes not kept; the last lines follow ...]\n".encode())
                out.write(tail)
        self.tail = tail.decode(errors="replace")

    def finish(self) -> None:
        self._thread.join(timeout=10)
        self._stream.close()  # type: ignore[attr-defined]


class _Watch:
    """What the runner samples while a phase runs: the memory of its process tree (its peak, and a
    kill over the budget where no cgroup enforces one) and what it wrote to its folders."""

    def __init__(self, pid: int, memory_mb: int | None, folders: tuple[Path, ...], disk_bytes: int) -> None:
        self.pid = pid
        self.memory_mb = memory_mb
        self.folders = folders
        self.disk_bytes = disk_bytes
        self.peak_mb: float | None = None
        self.over: str | None = None  # "memory" or "disk": the limit the phase went past
        self._next_disk = 0.0

    def sample(self, now: float) -> None:
        rss = _tree_rss_mb(self.pid)
        self.peak_mb = max(self.peak_mb or 0.0, rss)
        if self.memory_mb is not None and rss > self.memory_mb:
            self.over = "memory"
        if self.folders and now >= self._next_disk:
            self._next_disk = now + _DISK_SAMPLE_S
            if sum(disk_usage(folder) for folder in self.folders) > self.disk_bytes:
                self.over = "disk"


def _wait(
    proc: subprocess.Popen[bytes], deadline: float, cancel: threading.Event, watch: _Watch
) -> tuple[bool, bool]:
    """Wait for the child until the deadline, a cancel or a limit the watch sees: (timed out, cancelled).
    The watch samples every _MEMORY_SAMPLE_S, first after _POLL_S: short runs get one sample too.

    A pidfd wakes the moment the child exits; Popen.wait(timeout) polls with sleeps of up to 50 ms,
    which for short trials cost more than the trial itself.
    """
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    next_sample = time.monotonic() + _POLL_S
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if now >= next_sample:
                watch.sample(now)
                next_sample = now + _MEMORY_SAMPLE_S
                if watch.over is not None:
                    return False, False
            remaining = deadline - now
            if remaining <= 0:
                return True, False
            if cancel.is_set():
                return False, True
            if pidfd is not None:
                select.select([pidfd], [], [], min(_POLL_S, remaining))
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=min(_POLL_S, remaining))
        return False, False
    finally:
        if pidfd is not None:
            os.close(pidfd)


_MEMORY_SAMPLE_S = 0.5
_DISK_SAMPLE_S = 1.0  # walking the folders costs more than reading /proc
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def _tree_rss_mb(root: int) -> float:
    """The resident memory of a process and all its descendants now, in MB (0 where /proc cannot tell).
    Walks each process's children rather than all of /proc, which on a busy host is thousands of files.
    The kernel's own peak (wait4's ru_maxrss) is no use here: it counts the spawning process's size, and
    the sandbox does not pass its children's peaks up."""
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue  # it exited meanwhile, or this kernel has no children files
    return total * _PAGE_MB


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def prepare_data(env: Environment, settings: Settings) -> Path:
    """The environment's prepared data folder, running its (trusted) prepare command once."""
    target = settings.prepared_data_dir / env.name / _data_fingerprint(env)
    ready = target / ".ready"
    if ready.exists() or env.spec.commands.prepare is None:
        target.mkdir(parents=True, exist_ok=True)
        return target
    target.mkdir(parents=True, exist_ok=True)
    # Two campaigns or workers starting together on one machine: the first prepares, the other waits.
    with open(target / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return target
        argv = [
            part.format_map({"python": settings.python, "data": str(target)})
            for part in env.spec.commands.prepare
        ]
        done = subprocess.run(argv, cwd=env.root, capture_output=True, text=True)
        if done.returncode != 0:
            raise ConfigError(
                f"{env.name}: preparing data failed ({_describe_exit(done.returncode)}): {_last_line(done.stderr or done.stdout)}"
            )
        _open_to_all(target)  # trials of a root service run as uids of their own
        ready.write_text(done.stdout)
    return target


def _open_to_all(folder: Path) -> None:
    """Let every uid read the prepared data (the service's own cache) and enter its folders."""
    for path in (folder, *folder.rglob("*")):
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode):
            path.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0))


def _data_fingerprint(env: Environment) -> str:
    """What prepared data depends on: the environment's protected files and the presets' inputs (each
    file's path, size and modification time: a dataset changed in place is prepared again)."""
    parts = ["".join(sorted(env.protected_digests.values()))]  # alone, as before inputs counted
    for path in sorted({p for preset in env.spec.presets.values() for p in preset.input_paths}):
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                stat = file.stat()
            except OSError:  # missing or unreadable: the run that needs it says so
                parts.append(f"{file} -")
                continue
            parts.append(f"{file} {stat.st_size} {stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
