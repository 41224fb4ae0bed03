"""Reading what a trial left: links, FIFOs and devices are never followed, read or waited on."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from autoresearch.untrusted import (
    NotARegularFile,
    disk_usage,
    first_special_file,
    read_regular,
    read_text,
    regular_files,
    sha256_regular,
)


@pytest.fixture
def host_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "host" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("hunter2")
    return secret


def test_a_link_is_never_read_through(tmp_path: Path, host_secret: Path) -> None:
    link = tmp_path / "train.log"
    link.symlink_to(host_secret)
    with pytest.raises(NotARegularFile):
        read_regular(link)
    with pytest.raises(NotARegularFile):
        sha256_regular(link)
    assert read_text(link) == ""


def test_a_fifo_or_a_device_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "harness.py"
    os.mkfifo(fifo)
    results: list[type[BaseException]] = []

    def read_all() -> None:
        for path in (fifo, Path("/dev/zero")):
            try:
                sha256_regular(path)
            except NotARegularFile as exc:
                results.append(type(exc))

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert results == [NotARegularFile, NotARegularFile]


def test_a_walk_yields_regular_files_and_never_enters_a_linked_folder(
    tmp_path: Path, host_secret: Path
) -> None:
    out = tmp_path / "out"
    (out / "nested").mkdir(parents=True)
    (out / "model.bin").write_bytes(b"weights")
    (out / "nested" / "notes.txt").write_text("ok")
    (out / "checkpoints").symlink_to(host_secret.parent)
    (out / "secret").symlink_to(host_secret)
    os.mkfifo(out / "stream")
    assert sorted(p.relative_to(out).as_posix() for p, _ in regular_files(out)) == [
        "model.bin",
        "nested/notes.txt",
    ]
    assert first_special_file(out) == out / "checkpoints"
    linked_out = tmp_path / "linked"
    linked_out.symlink_to(host_secret.parent)
    assert list(regular_files(linked_out)) == [] and disk_usage(linked_out) == 0


def test_the_disk_a_folder_takes_counts_every_entry_and_follows_no_link(
    tmp_path: Path, host_secret: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    big = out / "big.bin"
    big.write_bytes(os.urandom(1 << 20))
    assert disk_usage(out) >= 1 << 20
    for i in range(100):
        (out / f"empty{i}").touch()
    assert disk_usage(out) >= (1 << 20) + 100 * 4096  # an inode flood counts
    host_secret.write_bytes(os.urandom(4 << 20))
    (out / "elsewhere").symlink_to(host_secret.parent)
    assert disk_usage(out) < 2 << 20


def test_a_socket_in_the_output_is_special(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.txt").write_text("3 -1 1")
    assert first_special_file(out) is None
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(out / "sock"))
    try:
        assert first_special_file(out) == out / "sock"
    finally:
        listener.close()
