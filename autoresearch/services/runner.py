"""Run one trial: a working copy of the parent's code plus the patch, training then evaluation.

Each phase is a subprocess in its own process group and sandbox, under the trial's wall-clock
budget (the whole group is killed at the limit) with its output capped. Training sees the training
data and its own folder; the evaluator runs from the pristine environment, reads what training
left, and owns the score. Protected files are checked by sha256 before and after training.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from autoresearch.adapters.artifacts import ArtifactStore, bundle_key, code_bundle, trial_key
from autoresearch.adapters.sandbox import MemoryCgroup, Mounts, Sandbox, die_with_parent
from autoresearch.domain.model import FailureLabel, TrialResult
from autoresearch.environment import Environment, Preset, sha256_file
from autoresearch.errors import ConfigError
from autoresearch.settings import Settings

EVALUATOR_REFUSED = 3  # an evaluator exits with this when the model breaks a rule of the environment
_OOM_PATTERNS = re.compile(r"CUDA out of memory|OutOfMemoryError|MemoryError|Cannot allocate memory")
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


@dataclass(frozen=True)
class PhaseOutcome:
    exit_code: int | None
    seconds: float
    timed_out: bool = False
    cancelled: bool = False
    oom: bool = False
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

        train = self._run_phase(
            "train",
            self._argv(self.env.spec.commands.train, job, out_dir),
            cwd=code_dir,
            mounts=Mounts(
                writable=(root,),
                readable=(*(self.data_dir / f for f in self.env.spec.data.train), *self.preset.input_paths),
                hidden=(self.settings.data_dir, self.env.root),
            ),
            log=root / "train.log",
            deadline=deadline,
            cancel=cancel,
            job=job,
        )
        failure = self._phase_failure("training", train)
        if failure is None and (changed := self._changed_protected_files(code_dir)):
            failure = (FailureLabel.ILLEGAL_EDIT, f"training changed protected file {changed[0]}")
        if failure is not None:
            return self._finish(job, root, started, train, None, failure, {}, digest)

        evaluate, verdict = self._evaluate(job, train.seconds, deadline, cancel)
        failure = self._phase_failure("evaluation", evaluate) or self._judge(verdict)
        return self._finish(job, root, started, train, evaluate, failure, verdict, digest)

    def evaluate_again(self, job: TrialJob, train_seconds: float) -> tuple[PhaseOutcome, dict[str, float]]:
        """The evaluator run once more on what the job's training left (its folder must still be there):
        the phase and its verdict."""
        deadline = time.monotonic() + self.preset.budget.wall_clock_s
        return self._evaluate(job, train_seconds, deadline, threading.Event())

    def _evaluate(
        self, job: TrialJob, train_seconds: float, deadline: float, cancel: threading.Event
    ) -> tuple[PhaseOutcome, dict[str, float]]:
        root = self.trial_dir(job)
        out_dir = root / "out"
        phase = self._run_phase(
            "evaluate",
            self._argv(self.env.spec.commands.evaluate, job, out_dir, train_seconds=f"{train_seconds:.3f}"),
            cwd=self.env.root,
            mounts=Mounts(
                readable=(
                    self.env.root,
                    out_dir,
                    *(self.data_dir / f for f in self.env.spec.data.evaluate),
                    *self.preset.input_paths,
                ),
                hidden=(self.settings.data_dir,),
            ),
            log=root / "evaluate.log",
            deadline=deadline,
            cancel=cancel,
            job=job,
        )
        return phase, parse_summary((root / "evaluate.log").read_text(errors="replace"))

    def _keep_artifacts(self, job: TrialJob, root: Path, digest: str) -> None:
        """The code bundle (once per distinct code), the phases' logs and, when it is small enough, what
        training left in its output folder (the checkpoint), in the artifact store."""
        assert self.artifacts is not None
        if not self.artifacts.exists(bundle_key(digest)):
            self.artifacts.put(bundle_key(digest), code_bundle(job.code))
        for name in ("train.log", "evaluate.log"):
            if (root / name).is_file():
                self.artifacts.put(trial_key(job.campaign_id, job.number, name), (root / name).read_bytes())
        outputs = [f for f in sorted((root / "out").rglob("*")) if f.is_file() and not f.is_symlink()]
        if sum(f.stat().st_size for f in outputs) <= self.settings.checkpoint_cap_mb * 1e6:
            for path in outputs:
                name = f"out/{path.relative_to(root / 'out').as_posix()}"
                self.artifacts.put(trial_key(job.campaign_id, job.number, name), path.read_bytes())

    # -- steps ----------------------------------------------------------------------------------
    def _changed_protected_files(self, code_dir: Path) -> list[str]:
        """Protected files of the working copy whose sha256 differs from the environment's."""
        return [f for f in self.env.trial_files if sha256_file(code_dir / f) != self.env.protected_digests[f]]

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

    def _child_env(self, job: TrialJob, home: Path) -> dict[str, str]:
        threads = str(self.env.resources(self.preset).cpu_threads)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": str(job.seed),
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
        }
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
    ) -> PhaseOutcome:
        started = time.monotonic()
        cgroup = MemoryCgroup(
            f"c{job.campaign_id}-t{job.number}-{phase}-{os.getpid()}", self.preset.budget.memory_mb
        )

        def in_child() -> None:
            die_with_parent()
            cgroup.enter()

        # Any preexec function makes Python fork instead of vfork, slower for a large parent; bubblewrap
        # already dies with its parent, so the hook runs only for a cgroup or an unsandboxed child.
        needs_hook = cgroup.active or not self.sandbox.isolated
        try:
            proc = subprocess.Popen(
                self.sandbox.wrap(argv, cwd, mounts),
                cwd=cwd,
                env=self._child_env(job, log.parent),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=in_child if needs_hook else None,
            )
        except OSError as exc:
            log.write_text(f"could not start {argv[0]}: {exc}\n")
            cgroup.remove()
            return PhaseOutcome(exit_code=None, seconds=0.0, tail=f"could not start {argv[0]}: {exc}")
        assert proc.stdout is not None
        capture = _LogCapture(proc.stdout, log, self.settings.log_cap_bytes, self.settings.log_tail_bytes)
        timed_out, cancelled, peak_rss_mb = _wait(proc, deadline, cancel)
        if timed_out or cancelled:
            _kill_group(proc)
        capture.finish()
        oom = cgroup.hit_limit() or bool(proc.returncode and _OOM_PATTERNS.search(capture.tail))
        cgroup.remove()
        return PhaseOutcome(
            exit_code=proc.returncode,
            seconds=time.monotonic() - started,
            timed_out=timed_out,
            cancelled=cancelled,
            oom=oom,
            tail=capture.tail,
            peak_rss_mb=peak_rss_mb,
        )

    def _phase_failure(self, what: str, phase: PhaseOutcome) -> tuple[FailureLabel, str] | None:
        budget = self.preset.budget.wall_clock_s
        if phase.cancelled:
            return FailureLabel.CANCELLED, f"stopped by the user during {what}"
        if phase.timed_out:
            return FailureLabel.TIMEOUT, f"{what} ran past the wall-clock budget of {budget:g} s"
        if phase.oom:
            return FailureLabel.OOM, f"{what} ran out of memory"
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
    ) -> TrialResult:
        tail = f"== train ==\n{train.tail}" + (f"\n== evaluate ==\n{evaluate.tail}" if evaluate else "")
        last = evaluate or train
        details = {
            # What training printed is shown, never scored: the evaluator's verdict wins every clash.
            "metrics": parse_summary(train.tail) | dict(verdict) | _measured(train),
            "curve": parse_progress(_read_text(root / "train.log")),
            "duration_s": time.monotonic() - started,
            "exit_code": last.exit_code,
            "log_tail": tail[-self.settings.log_tail_bytes :],
            "code_hash": digest,
        }
        if self.artifacts is not None and not job.folder:  # preflight runs keep nothing
            self._keep_artifacts(job, root, digest)
        if not self.settings.keep_trial_dirs:
            shutil.rmtree(root, ignore_errors=True)
        if failure is not None:
            return TrialResult.failed(failure[0], failure[1], **details)
        return TrialResult.scored(verdict[self.env.spec.metric.name], **details)


def _measured(train: PhaseOutcome) -> dict[str, float]:
    """What the runner itself measured of training, kept with the trial's metrics."""
    return {} if train.peak_rss_mb is None else {"train_peak_rss_mb": round(train.peak_rss_mb, 1)}


def _read_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


class _LogCapture:
    """Copies a child's output to a file, keeping the first `cap` bytes and the last `tail` bytes."""

    def __init__(self, stream: object, path: Path, cap: int, tail: int) -> None:
        self._stream = stream
        self._path = path
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
        with self._path.open("wb") as out:
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


def _wait(
    proc: subprocess.Popen[bytes], deadline: float, cancel: threading.Event
) -> tuple[bool, bool, float | None]:
    """Wait for the child until the deadline or a cancel: (timed out, cancelled, the peak memory of its
    process tree in MB, sampled every _MEMORY_SAMPLE_S; None if it exited before the first sample).

    A pidfd wakes the moment the child exits; Popen.wait(timeout) polls with sleeps of up to 50 ms,
    which for short trials cost more than the trial itself.
    """
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    peak_mb: float | None = None
    next_sample = time.monotonic() + _POLL_S  # then every _MEMORY_SAMPLE_S: short runs get one too
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if now >= next_sample:
                peak_mb = max(peak_mb or 0.0, _tree_rss_mb(proc.pid))
                next_sample = now + _MEMORY_SAMPLE_S
            remaining = deadline - now
            if remaining <= 0:
                return True, False, peak_mb
            if cancel.is_set():
                return False, True, peak_mb
            if pidfd is not None:
                select.select([pidfd], [], [], min(_POLL_S, remaining))
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=min(_POLL_S, remaining))
        return False, False, peak_mb
    finally:
        if pidfd is not None:
            os.close(pidfd)


_MEMORY_SAMPLE_S = 0.5
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
        ready.write_text(done.stdout)
    return target


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
