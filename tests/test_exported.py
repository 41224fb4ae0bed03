"""Evaluators load what training left as data: crafted torch.export archives never run code.

Each attack is first shown to work against `torch.export.load` itself (so the test cannot pass by
building a harmless archive), then refused, or made harmless, by `load_exported_program`.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from autoresearch.exported import RefusedArchive, load_exported_program  # noqa: E402
from autoresearch.settings import bundled_path  # noqa: E402
from autoresearch.untrusted import NotARegularFile  # noqa: E402

Entries = dict[str, bytes]


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(self.linear(x))


@pytest.fixture
def genuine(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(_Tiny().eval(), (torch.zeros(2, 4),)), path)
    return path


def _payload(marker: Path) -> bytes:
    """A pickle that, once unpickled, writes `marker`: the proof that code ran."""

    class Payload:
        def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
            return exec, (f"open({str(marker)!r}, 'w').write('ran')",)

    return pickle.dumps(Payload())


def _rewrite(source: Path, target: Path, edit: Callable[[Entries], None]) -> Path:
    """A copy of the archive with its entries (names below the root folder) edited."""
    with zipfile.ZipFile(source) as archive:
        root = archive.namelist()[0].split("/", 1)[0]
        entries = {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()}
    edit(entries)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(f"{root}/{name}", data)
    return target


def _edit_json(entries: Entries, name: str, edit: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    value = json.loads(entries[name])
    edit(value)
    entries[name] = json.dumps(value).encode()


def _pickled_weight(marker: Path) -> Callable[[Entries], None]:
    def edit(entries: Entries) -> None:
        config = "data/weights/model_weights_config.json"
        _edit_json(entries, config, lambda c: next(iter(c["config"].values())).update(use_pickle=True))
        first = next(iter(json.loads(entries[config])["config"].values()))["path_name"]
        entries[f"data/weights/{first}"] = _payload(marker)

    return edit


def _nodes(entries: Entries) -> list[dict]:  # type: ignore[type-arg]
    return json.loads(entries["models/model.json"])["graph_module"]["graph"]["nodes"]  # type: ignore[no-any-return]


def _retarget(target: str) -> Callable[[Entries], None]:
    def edit(entries: Entries) -> None:
        _edit_json(
            entries,
            "models/model.json",
            lambda p: p["graph_module"]["graph"]["nodes"][0].update(target=target),
        )

    return edit


def test_a_genuine_archive_loads_and_computes_what_torch_loads(genuine: Path) -> None:
    x = torch.randn(2, 4)
    ours = load_exported_program(genuine).module()
    theirs = torch.export.load(genuine).module()
    assert torch.equal(ours(x), theirs(x))


def test_a_pickled_weight_runs_code_in_torch_and_is_refused_here(genuine: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    crafted = _rewrite(genuine, tmp_path / "crafted.pt2", _pickled_weight(marker))
    with pytest.raises(Exception):  # noqa: B017  the payload is not a tensor, so loading fails after it ran
        torch.export.load(crafted)
    assert marker.exists(), "the crafted archive should run code in torch.export.load"
    marker.unlink()
    with pytest.raises(RefusedArchive, match="pickled"):
        load_exported_program(crafted)
    assert not marker.exists()


def test_pickled_sample_inputs_run_code_in_torch_and_are_never_read_here(
    genuine: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"

    def edit(entries: Entries) -> None:
        entries["data/sample_inputs/model.pt"] = _payload(marker)

    crafted = _rewrite(genuine, tmp_path / "crafted.pt2", edit)
    with pytest.raises(Exception):  # noqa: B017
        torch.export.load(crafted)
    assert marker.exists(), "torch.load falls back to full unpickling of the sample inputs"
    marker.unlink()
    program = load_exported_program(crafted)  # the sample inputs are replaced, not read
    assert program.module()(torch.zeros(2, 4)).shape == (2, 3)
    assert not marker.exists()


def test_guard_code_is_run_by_torch_and_refused_here(genuine: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('ran') > 0"

    def edit(entries: Entries) -> None:
        _edit_json(entries, "models/model.json", lambda p: p.update(guards_code=[code]))

    crafted = _rewrite(genuine, tmp_path / "crafted.pt2", edit)
    torch.export.load(crafted).module()(torch.zeros(2, 4))
    assert marker.exists(), "torch exec()s guard code when it builds the module"
    marker.unlink()
    with pytest.raises(RefusedArchive, match="guard code"):
        load_exported_program(crafted)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("torch.os.system", "not an aten or prims operator"),
        ("builtins.exec", "not an aten or prims operator"),
        ("torch.ops.mylib.run.default", "not an aten or prims operator"),
        ("torch.ops.aten.from_file.default", "not allowed"),
        ("torch.ops.aten._print.default", "not allowed"),
    ],
)
def test_a_node_calling_anything_but_a_tensor_operator_is_refused(
    genuine: Path, tmp_path: Path, target: str, why: str
) -> None:
    crafted = _rewrite(genuine, tmp_path / "crafted.pt2", _retarget(target))
    with pytest.raises(RefusedArchive, match=why):
        load_exported_program(crafted)


def test_a_symbolic_shape_expression_is_refused_before_sympy_sees_it(genuine: Path, tmp_path: Path) -> None:
    def edit(entries: Entries) -> None:
        def plant(program: dict) -> None:  # type: ignore[type-arg]
            values = program["graph_module"]["graph"]["tensor_values"]
            first = next(iter(values.values()))
            first["sizes"][0] = {"as_expr": {"expr_str": "__import__('os').getpid()", "hint": None}}

        _edit_json(entries, "models/model.json", plant)

    with pytest.raises(RefusedArchive, match="symbolic shape"):
        load_exported_program(_rewrite(genuine, tmp_path / "crafted.pt2", edit))


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("data/weights/model.pt", "unexpected entry"),  # the legacy pickled weights file
        ("data/constants/model.pt", "unexpected entry"),
        ("extra/notes.txt", "unexpected entry"),
        ("data/aotinductor/model/model.so", "unexpected entry"),
    ],
)
def test_an_entry_outside_the_checked_layout_is_refused(
    genuine: Path, tmp_path: Path, entry: str, why: str
) -> None:
    def edit(entries: Entries) -> None:
        entries[entry] = _payload(tmp_path / "ran")

    with pytest.raises(RefusedArchive, match=why):
        load_exported_program(_rewrite(genuine, tmp_path / "crafted.pt2", edit))


@pytest.mark.parametrize("prefix", ["custom_obj_0", "opaque_obj_0"])
def test_custom_and_opaque_constants_are_refused(genuine: Path, tmp_path: Path, prefix: str) -> None:
    def edit(entries: Entries) -> None:
        meta = {"path_name": prefix, "is_param": False, "use_pickle": False, "tensor_meta": None}
        _edit_json(
            entries, "data/constants/model_constants_config.json", lambda c: c["config"].update(x=meta)
        )
        entries[f"data/constants/{prefix}"] = _payload(tmp_path / "ran")

    with pytest.raises(RefusedArchive, match="not a raw tensor"):
        load_exported_program(_rewrite(genuine, tmp_path / "crafted.pt2", edit))
    assert not (tmp_path / "ran").exists()


def test_a_duplicate_or_compressed_entry_is_refused(genuine: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(genuine) as archive:
        names = archive.namelist()
        data = {name: archive.read(name) for name in names}
    duplicate, compressed = tmp_path / "duplicate.pt2", tmp_path / "compressed.pt2"
    with zipfile.ZipFile(duplicate, "w") as archive:
        for name in names:
            archive.writestr(name, data[name])
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr(names[0], data[names[0]])
    with zipfile.ZipFile(compressed, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.writestr(name, data[name])
    with pytest.raises(RefusedArchive, match="twice"):
        load_exported_program(duplicate)
    with pytest.raises(RefusedArchive, match="compressed"):
        load_exported_program(compressed)


def test_a_link_or_fifo_in_place_of_the_archive_is_refused_without_hanging(
    genuine: Path, tmp_path: Path
) -> None:
    link, fifo = tmp_path / "link.pt2", tmp_path / "fifo.pt2"
    link.symlink_to(genuine)
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile):
        load_exported_program(link)
    done = threading.Event()

    def load_fifo() -> None:
        with pytest.raises(NotARegularFile):
            load_exported_program(fifo)
        done.set()

    worker = threading.Thread(target=load_fifo, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done.is_set(), "reading a FIFO in place of the archive blocked"


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt2"
    path.write_bytes(b"not a zip")
    with pytest.raises(RefusedArchive, match="not a zip"):
        load_exported_program(path)


@pytest.mark.parametrize("env", ["nanogpt", "digits", "grpo"])
def test_each_shipped_evaluator_refuses_a_pickled_archive_and_prints_no_score(
    env: str, genuine: Path, tmp_path: Path
) -> None:
    """The attack end to end: the real evaluator script on a crafted `model.pt2` (torch.export.load
    ran the payload, which printed a forged verdict and exited 0)."""
    marker = tmp_path / "ran"
    out = tmp_path / "out"
    out.mkdir()
    _rewrite(genuine, out / "model.pt2", _pickled_weight(marker))
    (out / "model.json").write_text(json.dumps({"block_size": 64}))
    root = bundled_path("environments") / env
    data = tmp_path / "data"
    subprocess.run(
        [sys.executable, "prepare.py", "--data", str(data)], cwd=root, check=True, capture_output=True
    )
    argv = [sys.executable, "evaluate.py", "--preset", "cpu", "--data", str(data), "--out", str(out)]
    if env == "digits":
        argv += ["--train-seconds", "1.0"]
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "refused" in done.stderr and "pickled" in done.stderr
    assert "---" not in done.stdout
    assert not marker.exists()
