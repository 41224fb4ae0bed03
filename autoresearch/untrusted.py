"""Reading what a trial left: every path under a trial folder may be a link, a FIFO or a device.

Trial code writes its folder while it runs, so the service never follows what it finds there. A
file is opened with O_NOFOLLOW and O_NONBLOCK (a FIFO must not block the reader) and used only
when fstat says it is a regular file; a folder is walked through descriptors opened with
O_NOFOLLOW, with lstat. These are the only ways the host (and an evaluator) reads a trial's files.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path


class NotARegularFile(OSError):
    """The path is a link, a FIFO, a device, a socket or a folder where a plain file was expected."""


def open_regular(path: Path, flags: int = os.O_RDONLY) -> int:
    """A file descriptor for `path` when it is a regular file, never following a link at its end."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise NotARegularFile(f"{path} is a symbolic link") from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotARegularFile(f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file (its first `limit` bytes when given)."""
    with os.fdopen(open_regular(path), "rb") as handle:
        return handle.read() if limit is None else handle.read(limit)


def read_text(path: Path) -> str:
    """A regular file's text, or "" when it is missing or anything but a regular file."""
    try:
        return read_regular(path).decode(errors="replace")
    except OSError:
        return ""


def sha256_regular(path: Path) -> str:
    """The sha256 of a regular file; a link, FIFO or device raises NotARegularFile instead of hanging."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _walk(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry under `folder` with its lstat, in name order. Each folder is opened with O_NOFOLLOW
    relative to its parent's descriptor, so neither `folder` nor a folder under it is followed when it
    is a link, or becomes one while the walk goes on."""
    try:
        pending = [(os.open(folder, _FOLDER_FLAGS), folder)]
    except OSError:
        return
    try:
        while pending:
            fd, path = pending.pop()
            try:
                with os.scandir(fd) as found:
                    entries = sorted(found, key=lambda e: e.name)
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                        if stat.S_ISDIR(info.st_mode):
                            pending.append((os.open(entry.name, _FOLDER_FLAGS, dir_fd=fd), path / entry.name))
                    except OSError:
                        continue
                    yield path / entry.name, info
            finally:
                os.close(fd)
    finally:
        for fd, _ in pending:
            os.close(fd)


def regular_files(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every regular file under `folder` with its lstat: links (to files or folders), FIFOs, devices and
    sockets are skipped, never followed. A `folder` that is itself a link yields nothing."""
    return ((path, info) for path, info in _walk(folder) if stat.S_ISREG(info.st_mode))


def first_special_file(folder: Path) -> Path | None:
    """The first entry under `folder` that is neither a folder nor a regular file (a link, a FIFO, a
    device, a socket); None when there is none."""
    plain = (stat.S_IFDIR, stat.S_IFREG)
    return next((path for path, info in _walk(folder) if stat.S_IFMT(info.st_mode) not in plain), None)


_MIN_ENTRY_BYTES = 4096  # an empty file still takes an inode: a flood of them counts


def disk_usage(folder: Path) -> int:
    """Bytes allocated to everything under `folder`, links and special files included, never followed;
    each entry counts at least _MIN_ENTRY_BYTES."""
    return sum(max(info.st_blocks * 512, _MIN_ENTRY_BYTES) for _, info in _walk(folder))
