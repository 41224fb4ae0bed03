"""Load a torch.export archive that untrusted training wrote, as data and never as code.

`torch.export.load` trusts its input. A crafted `.pt2` runs code in the loading process through
pickled weights or constants (`use_pickle`, custom and opaque objects, legacy `.pt` entries), its
sample inputs (`torch.load` falls back to full unpickling), the guard code that `.module()`
exec()s, symbolic shape expressions handed to sympy (which eval()s them), and node targets that
are resolved by walking attributes from the `torch` module (`torch.os.system`). An evaluator must
therefore never call it on what training left.

`load_exported_program` reads the archive itself, accepts only tensors stored as raw bytes and a
graph of aten or prims operators on static shapes, writes a fresh archive holding exactly what it
checked (so torch never parses the trial's bytes), lets torch load that, and checks the loaded
graph once more. Anything else is `RefusedArchive`, a ValueError that names what was refused.
"""

from __future__ import annotations

import io
import json
import operator
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoresearch.untrusted import read_regular

if TYPE_CHECKING:
    from torch.export import ExportedProgram

__all__ = ["RefusedArchive", "check_graph", "load_exported_program"]


class RefusedArchive(ValueError):
    """The archive holds something an evaluator must not load: code, pickles or an unknown entry."""


# Operators that reach outside the tensors they are given: files, stdout (a forged summary line).
DENIED_OPERATORS = frozenset({"from_file", "save", "_print"})
_TARGET = re.compile(r"^torch\.ops\.(aten|prims)\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
_GETITEM = "_operator.getitem"
_PAYLOAD = {"weights": re.compile(r"^weight_[0-9]+$"), "constants": re.compile(r"^tensor_[0-9]+$")}
_FIXED = {
    "archive_format",
    "archive_version",
    "byteorder",
    ".data/version",
    ".data/serialization_id",
    "models/model.json",
    "data/weights/model_weights_config.json",
    "data/constants/model_constants_config.json",
    "data/sample_inputs/model.pt",  # a pickle: read never, replaced by an empty one
}
# Keys of the serialized program that carry code or expressions torch evaluates when loading.
_CODE_KEYS = {
    "expr_str": "a symbolic shape expression (only static shapes are accepted)",
    "as_custom_obj": "a custom object",
    "as_graph": "a nested graph (higher-order operator)",
    "as_operator": "an operator passed as an argument",
}


def load_exported_program(path: Path, max_bytes: int = 4 << 30) -> ExportedProgram:
    """The program in the `.pt2` archive at `path`, loaded only after every entry was checked."""
    import torch

    entries = _read_entries(read_regular(path, max_bytes + 1), max_bytes)
    clean = io.BytesIO()
    _write_checked_archive(entries, clean)
    clean.seek(0)
    try:
        program = torch.export.load(clean)
    except Exception as exc:  # torch raises many kinds on a malformed but harmless program
        raise RefusedArchive(f"the archive does not load: {type(exc).__name__}: {exc}") from exc
    check_graph(program)
    return program


def check_graph(program: ExportedProgram) -> None:
    """Refuse a loaded program that calls anything but allowed aten or prims operators."""
    import torch

    for module in program.graph_module.modules():
        graph = getattr(module, "graph", None)
        for node in graph.nodes if graph is not None else ():
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            if node.op != "call_function":
                raise RefusedArchive(f"node {node.name!r} is a {node.op}, not an operator call")
            target = node.target
            if target is operator.getitem:
                continue
            if not isinstance(target, torch._ops.OpOverload):
                raise RefusedArchive(f"node {node.name!r} calls {target!r}, not an aten or prims operator")
            namespace, name = target.namespace, target._schema.name.split("::")[-1]
            if (
                namespace not in ("aten", "prims")
                or name in DENIED_OPERATORS
                or "Storage" in str(target._schema)
            ):
                raise RefusedArchive(f"node {node.name!r} calls {namespace}::{name}, which is not allowed")


def _read_entries(data: bytes, max_bytes: int) -> dict[str, bytes]:
    """The archive's entries by name below its one root folder; duplicates, compression and any
    name outside the known layout are refused."""
    if len(data) > max_bytes:
        raise RefusedArchive(f"the archive is over {max_bytes:,} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise RefusedArchive(f"not a zip archive: {exc}") from exc
    roots = {info.filename.split("/", 1)[0] for info in infos}
    if len(roots) != 1:
        raise RefusedArchive(f"the archive has {len(roots)} root folders, not one")
    entries: dict[str, bytes] = {}
    for info in infos:
        name = info.filename.split("/", 1)[1] if "/" in info.filename else ""
        if name in entries:
            raise RefusedArchive(f"entry {name!r} appears twice")
        if info.compress_type != zipfile.ZIP_STORED:
            raise RefusedArchive(f"entry {name!r} is compressed; torch.export stores entries as they are")
        if info.file_size > max_bytes:
            raise RefusedArchive(f"entry {name!r} is over {max_bytes:,} bytes")
        entries[name] = archive.read(info)
    return entries


def _write_checked_archive(entries: dict[str, bytes], target: io.BytesIO) -> None:
    from torch.export.pt2_archive._package import PT2ArchiveWriter

    expected = set(_FIXED)
    payloads: dict[str, bytes] = {}
    configs: dict[str, str] = {}
    for kind in ("weights", "constants"):
        config_name = f"data/{kind}/model_{kind}_config.json"
        config = _json(entries, config_name)
        for fqn, meta in _dict(config.get("config"), config_name).items():
            meta = _dict(meta, f"{config_name}: {fqn}")
            path_name = meta.get("path_name")
            if meta.get("use_pickle") is not False:
                raise RefusedArchive(
                    f"{kind[:-1]} {fqn!r} is pickled (use_pickle): an evaluator loads data, never code"
                )
            if not isinstance(path_name, str) or not _PAYLOAD[kind].match(path_name):
                raise RefusedArchive(f"{kind[:-1]} {fqn!r} is stored as {path_name!r}, not a raw tensor")
            if not isinstance(meta.get("tensor_meta"), dict):
                raise RefusedArchive(f"{kind[:-1]} {fqn!r} has no tensor description")
            payloads[f"data/{kind}/{path_name}"] = _entry(entries, f"data/{kind}/{path_name}")
        configs[config_name] = json.dumps(config)
    expected |= set(payloads)
    unknown = sorted(set(entries) - expected)
    if unknown:
        raise RefusedArchive(f"unexpected entry {unknown[0]!r} (only a graph and raw tensors are loaded)")
    if _entry(entries, "byteorder") != b"little":
        raise RefusedArchive("the archive's byte order is not little-endian")
    program = _checked_program(_json(entries, "models/model.json"))
    with PT2ArchiveWriter(target) as writer:
        writer.write_bytes("archive_format", _entry(entries, "archive_format"))
        writer.write_bytes("archive_version", _entry(entries, "archive_version"))
        writer.write_bytes("byteorder", b"little")
        writer.write_string("models/model.json", json.dumps(program))
        for name, text in configs.items():
            writer.write_string(name, text)
        for name, payload in payloads.items():
            writer.write_bytes(name, payload)
        writer.write_bytes("data/sample_inputs/model.pt", b"")  # empty: no example inputs to unpickle


def _checked_program(program: dict[str, Any]) -> dict[str, Any]:
    """The serialized program with its metadata dropped, once nothing in it is code."""
    if program.get("guards_code"):
        raise RefusedArchive("the program carries guard code, which torch would exec()")
    if program.get("range_constraints"):
        raise RefusedArchive("the program has symbolic shapes (only static shapes are accepted)")
    _refuse_code_keys(program)
    module = _dict(program.get("graph_module"), "graph_module")
    graph = _dict(module.get("graph"), "graph_module.graph")
    if graph.get("custom_obj_values"):
        raise RefusedArchive("the graph holds custom objects")
    nodes = graph.get("nodes")
    if not isinstance(nodes, list):
        raise RefusedArchive("the graph has no list of nodes")
    for node in nodes:
        node = _dict(node, "a graph node")
        target = node.get("target")
        if not isinstance(target, str) or not (target == _GETITEM or _TARGET.match(target)):
            raise RefusedArchive(f"a node calls {target!r}, not an aten or prims operator")
        match = _TARGET.match(target)
        if match and match.group(2) in DENIED_OPERATORS:
            raise RefusedArchive(f"a node calls {target}, which is not allowed")
        node["metadata"] = {}  # stack traces and module paths: torch resolves some of them by name
    module["metadata"] = {}
    return program


def _refuse_code_keys(value: Any) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if key in _CODE_KEYS and inner is not None:
                    raise RefusedArchive(f"the program holds {_CODE_KEYS[key]}")
                pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)


def _entry(entries: dict[str, bytes], name: str) -> bytes:
    if name not in entries:
        raise RefusedArchive(f"the archive has no {name}")
    return entries[name]


def _json(entries: dict[str, bytes], name: str) -> dict[str, Any]:
    try:
        value = json.loads(_entry(entries, name))
    except ValueError as exc:
        raise RefusedArchive(f"{name} is not JSON: {exc}") from exc
    return _dict(value, name)


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RefusedArchive(f"{what} is not an object")
    return value
