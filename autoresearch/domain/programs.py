"""When two trials' code is one program: the same Python syntax trees, whatever the comments, the
layout and the spelling of numbers (`1e-4` and `0.0001` are one value). An LLM's patch and a catalog
entry that make one program in two spellings would otherwise be trained and measured twice."""

from __future__ import annotations

import ast
import contextlib
import hashlib
from collections.abc import Mapping
from functools import lru_cache

from autoresearch.domain.diffs import apply_diff
from autoresearch.errors import PatchError


def program_of(code: Mapping[str, str]) -> str:
    """A digest equal for two codes exactly when every file is the same program (Python files) or the
    same text (any other file, and Python that does not parse)."""
    digest = hashlib.sha256()
    for path in sorted(code):
        digest.update(f"{path}\0{_file_program(path, code[path])}\0".encode())
    return digest.hexdigest()


@lru_cache(maxsize=1024)
def _file_program(path: str, text: str) -> str:
    if path.endswith(".py"):
        # Code that does not parse (or nests past the recursion limit) is compared as text; the runner
        # reports what is wrong with it.
        with contextlib.suppress(SyntaxError, ValueError, RecursionError):
            text = ast.dump(ast.parse(text))
    return hashlib.sha256(text.encode()).hexdigest()


class Programs:
    """The program of each code written as a diff against one baseline, worked out once per diff."""

    def __init__(self, baseline: Mapping[str, str]) -> None:
        self.baseline = baseline
        self._of_diff: dict[str, str] = {}

    def of_diff(self, diff: str) -> str:
        if diff not in self._of_diff:
            try:
                self._of_diff[diff] = program_of(apply_diff(self.baseline, diff) if diff else self.baseline)
            except PatchError:  # the baseline was edited since this diff was made: compared as written
                self._of_diff[diff] = "diff " + hashlib.sha256(diff.encode()).hexdigest()
        return self._of_diff[diff]
