"""Reading what a trial left: every path under a trial folder may be a link, a FIFO or a device.

Trial code writes its folder while it runs, so the service never follows what it finds there. A
file is opened with O_NOFOLLOW and O_NONBLOCK (a FIFO must not block the reader) and used only
when fstat says it is a regular file; a folder is walked with lstat, regular files only. These are
the only ways the host (and an evaluator) reads a trial's files.
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
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotARegularFile(f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file (its first `limit` bytes when given)."""
    try:
        fd = open_regular(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise NotARegularFile(f"{path} is a symbolic link") from exc
        raise
    with os.fdopen(fd, "rb") as handle:
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


def regular_files(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every regular file under `folder` with its lstat, walking with lstat: links (to files or
    folders), FIFOs, devices and sockets are skipped, never followed. A `folder` that is itself a
    link yields nothing."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return
    except OSError:
        return
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                pending.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode):
                yield Path(entry.path), info


def first_special_file(folder: Path) -> Path | None:
    """The first entry under `folder` that is neither a folder nor a regular file (a link, a FIFO, a
    device, a socket), walking with lstat; None when there is none."""
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode):
                pending.append(Path(entry.path))
            elif not stat.S_ISREG(mode):
                return Path(entry.path)
    return None


_MIN_ENTRY_BYTES = 4096  # an empty file still takes an inode: a flood of them counts


def disk_usage(folder: Path) -> int:
    """Bytes allocated to everything under `folder`, links and special files included, never followed;
    each entry counts at least _MIN_ENTRY_BYTES."""
    total, pending = 0, [folder]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += max(info.st_blocks * 512, _MIN_ENTRY_BYTES)
            if stat.S_ISDIR(info.st_mode):
                pending.append(Path(entry.path))
    return total
