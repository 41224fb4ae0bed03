"""Unified diffs: parse, apply to in-memory code (3-way when plain apply fails), and make.

Pure text in, text out, so that every proposer's patch (a catalog edit, a numeric mutation, an
LLM's answer, a user's file) takes one path. Applying is exact on context lines, with the hunk
searched at any offset, as `patch` does with no fuzz.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import merge3

from autoresearch.errors import PatchError

DEV_NULL = "/dev/null"
_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NO_NEWLINE = "\\ No newline at end of file"


@dataclass(frozen=True)
class Hunk:
    old_start: int
    new_start: int
    lines: tuple[str, ...]  # each starts with ' ', '-' or '+'

    @property
    def old_lines(self) -> list[str]:
        return [line[1:] for line in self.lines if line[0] in " -"]

    @property
    def new_lines(self) -> list[str]:
        return [line[1:] for line in self.lines if line[0] in " +"]


@dataclass(frozen=True)
class FilePatch:
    old_path: str  # DEV_NULL for a new file
    new_path: str  # DEV_NULL for a deleted file
    hunks: tuple[Hunk, ...]
    old_has_final_newline: bool = True
    new_has_final_newline: bool = True

    @property
    def path(self) -> str:
        return self.old_path if self.new_path == DEV_NULL else self.new_path


def _strip_prefix(path: str) -> str:
    path = path.split("\t", 1)[0].strip()
    if path == DEV_NULL:
        return path
    return path[2:] if path.startswith(("a/", "b/")) else path


def parse_diff(text: str) -> list[FilePatch]:
    """Every file section of a unified diff; PatchError on anything malformed."""
    lines = text.splitlines()
    patches: list[FilePatch] = []
    i = 0
    while i < len(lines):
        if not (lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")):
            i += 1
            continue
        old_path, new_path = _strip_prefix(lines[i][4:]), _strip_prefix(lines[i + 1][4:])
        i += 2
        hunks: list[Hunk] = []
        old_nl = new_nl = True
        while i < len(lines) and lines[i].startswith("@@"):
            match = _HUNK_HEADER.match(lines[i])
            if not match:
                raise PatchError(f"malformed hunk header: {lines[i]!r}")
            old_len = int(match[2]) if match[2] is not None else 1
            new_len = int(match[4]) if match[4] is not None else 1
            i += 1
            body: list[str] = []
            seen_old = seen_new = 0
            while (seen_old < old_len or seen_new < new_len) and i < len(lines):
                line = lines[i] if lines[i] else " "  # some tools drop the space of empty context lines
                if line.startswith(_NO_NEWLINE):
                    i += 1
                    continue
                kind = line[0]
                if kind not in " -+":
                    raise PatchError(
                        f"hunk at line {i + 1} ends early: expected more lines, got {lines[i]!r}"
                    )
                seen_old += kind in " -"
                seen_new += kind in " +"
                body.append(line)
                i += 1
                if i < len(lines) and lines[i].startswith(_NO_NEWLINE):
                    old_nl = old_nl and kind == "+"
                    new_nl = new_nl and kind == "-"
            if seen_old != old_len or seen_new != new_len:
                raise PatchError(f"hunk {match[0]!r} is truncated")
            while i < len(lines) and lines[i].startswith(_NO_NEWLINE):
                i += 1
            hunks.append(Hunk(int(match[1]), int(match[3]), tuple(body)))
        if not hunks:
            raise PatchError(f"diff for {new_path} has no hunks")
        patches.append(FilePatch(old_path, new_path, tuple(hunks), old_nl, new_nl))
    if not patches:
        raise PatchError("no file changes found: expected a unified diff with ---/+++ headers and @@ hunks")
    return patches


def recount_hunks(diff: str) -> str:
    """The diff with every hunk header's line counts recounted from its body.

    Models write the body of a hunk well and its counts badly; `patch` would reject the whole
    diff for a miscount. A hunk's body runs until the next hunk or file header, or a line that
    cannot belong to a hunk; blank lines inside it are empty context lines.
    """
    lines = diff.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _HUNK_HEADER.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not _HUNK_HEADER.match(lines[j]) and not _starts_file(lines, j):
            if lines[j] and lines[j][0] not in " -+\\":
                break
            j += 1
        body = lines[i + 1 : j]
        while body and not body[-1]:  # blank lines after the last hunk are not context
            body.pop()
        old = sum(1 for line in body if not line or line[0] in " -")
        new = sum(1 for line in body if not line or line[0] in " +")
        tail = lines[i][match.end() :]
        out.append(f"@@ -{match[1]},{old} +{match[3]},{new} @@{tail}")
        out.extend(body)
        i = i + 1 + len(body)
    return "\n".join(out)


def _starts_file(lines: list[str], i: int) -> bool:
    return lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def touched_paths(diff: str) -> set[str]:
    return {p for fp in parse_diff(diff) for p in (fp.old_path, fp.new_path) if p != DEV_NULL}


def _split(text: str) -> tuple[list[str], bool]:
    if not text:
        return [], True
    lines = text.split("\n")
    if lines[-1] == "":
        return lines[:-1], True
    return lines, False


def _join(lines: list[str], final_newline: bool) -> str:
    if not lines:
        return ""
    return "\n".join(lines) + ("\n" if final_newline else "")


def _find(haystack: list[str], needle: list[str], expected: int) -> int | None:
    """Where `needle` occurs, searching outward from `expected`; None if nowhere."""
    if not needle:
        return min(max(expected, 0), len(haystack))
    last = len(haystack) - len(needle)
    for distance in range(max(expected, last - expected, 0) + 1):
        for pos in (expected - distance, expected + distance):
            if 0 <= pos <= last and haystack[pos : pos + len(needle)] == needle:
                return pos
    return None


def _apply_file(text: str | None, fp: FilePatch) -> str:
    lines, final_newline = _split(text or "")
    offset = 0
    for hunk in fp.hunks:
        old, new = hunk.old_lines, hunk.new_lines
        expected = max(hunk.old_start - 1, 0) + offset
        pos = _find(lines, old, expected)
        if pos is None:
            raise PatchError(f"{fp.path}: hunk @@ -{hunk.old_start} does not match the code")
        lines[pos : pos + len(old)] = new
        offset = pos - max(hunk.old_start - 1, 0) + len(new) - len(old)
    if not fp.new_has_final_newline:
        final_newline = False
    elif not fp.old_has_final_newline:
        final_newline = True
    return _join(lines, final_newline)


def apply_diff(
    files: Mapping[str, str], diff: str, *, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The code after `diff`, as a new dict; `files` is left alone.

    When a hunk does not match and `base` (the code the diff was written against) is given, the
    change is merged in three ways: base -> diff applied to base, and base -> `files`.
    Conflicting edits raise PatchError, as they would for a person.
    """
    result = dict(files)
    for fp in parse_diff(diff):
        if fp.old_path == DEV_NULL and fp.path in result:
            raise PatchError(f"{fp.path}: the diff creates it, but it already exists")
        if fp.old_path != DEV_NULL and fp.old_path not in result:
            raise PatchError(f"{fp.old_path}: no such file")
        try:
            patched = _apply_file(result.get(fp.old_path), fp)
        except PatchError:
            if base is None or fp.old_path not in base:
                raise
            patched = _merge(
                fp.path, base[fp.old_path], result[fp.old_path], _apply_file(base[fp.old_path], fp)
            )
        if fp.old_path != DEV_NULL and fp.old_path != fp.new_path:
            del result[fp.old_path]
        if fp.new_path != DEV_NULL:
            result[fp.new_path] = patched
    return result


def _merge(path: str, base: str, ours: str, theirs: str) -> str:
    merger = merge3.Merge3(base.splitlines(True), ours.splitlines(True), theirs.splitlines(True))
    if any(region[0] == "conflict" for region in merger.merge_regions()):
        raise PatchError(f"{path}: the change conflicts with an earlier edit of the same lines")
    return "".join(merger.merge_lines())


def make_diff(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """A unified diff (a/ and b/ paths, 3 lines of context) taking `old` to `new`."""
    out: list[str] = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        a_name = f"a/{path}" if before is not None else DEV_NULL
        b_name = f"b/{path}" if after is not None else DEV_NULL
        a_lines = (before or "").splitlines(True)
        b_lines = (after or "").splitlines(True)
        for line in difflib.unified_diff(a_lines, b_lines, a_name, b_name):
            out.append(line if line.endswith("\n") else f"{line}\n{_NO_NEWLINE}\n")
    return "".join(out)
