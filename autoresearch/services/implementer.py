"""Turning an idea into a child's code: legality, applying the patch, and a cheap preflight."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from autoresearch.domain.diffs import apply_diff, touched_paths
from autoresearch.domain.model import FailureLabel, Idea, Trial
from autoresearch.environment import Environment
from autoresearch.errors import PatchError
from autoresearch.services.proposer import Proposal
from autoresearch.services.runner import TrialJob, TrialRunner

# What a smoke run can show; a gate miss or size cap after a few steps says nothing about the real run.
PREFLIGHT_FAILURES = (FailureLabel.CRASH, FailureLabel.TIMEOUT, FailureLabel.OOM, FailureLabel.ILLEGAL_EDIT)


@dataclass(frozen=True)
class Attempt:
    """One patch tried for an idea, recorded as a Patch whatever became of it."""

    diff: str
    applied: bool
    error: str = ""  # why it did not apply, or why preflight failed
    files: tuple[str, ...] = ()
    llm_call_id: int | None = None
    label: FailureLabel | None = None  # set when the attempt failed


@dataclass(frozen=True)
class Implementation:
    """The child's code from the first accepted attempt, or None with the last attempt's failure."""

    code: Mapping[str, str] | None
    attempts: tuple[Attempt, ...]

    @property
    def failure(self) -> Attempt | None:
        return None if self.code is not None else self.attempts[-1]


class Implementer(Protocol):
    def implement(
        self, idea: Idea, proposal: Proposal, parent: Trial, parent_code: Mapping[str, str]
    ) -> Implementation: ...


def apply_checked(
    diff: str,
    parent_code: Mapping[str, str],
    env: Environment,
    base: Mapping[str, str] | None = None,
    llm_call_id: int | None = None,
) -> tuple[Attempt, Mapping[str, str] | None]:
    """Refuse a diff that touches anything but editable files, else apply it (3-way against `base` if given)."""
    try:
        files = tuple(sorted(touched_paths(diff)))
    except PatchError as exc:
        return Attempt(diff, False, str(exc), (), llm_call_id, FailureLabel.PATCH_FAILED), None
    for path in files:
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts or env.is_protected(path):
            error = f"the patch edits protected path {path}"
            return Attempt(diff, False, error, files, llm_call_id, FailureLabel.ILLEGAL_EDIT), None
        if not env.is_editable(path):
            error = f"{path} is not an editable file"
            return Attempt(diff, False, error, files, llm_call_id, FailureLabel.ILLEGAL_EDIT), None
    try:
        code = apply_diff(parent_code, diff, base=base)
    except PatchError as exc:
        return Attempt(diff, False, str(exc), files, llm_call_id, FailureLabel.PATCH_FAILED), None
    return Attempt(diff, True, "", files, llm_call_id), code


class Preflight:
    """A cheap check of a child's code before it takes a trial slot: it compiles, and (when the
    environment has a smoke preset) a few training steps of it run in the sandbox."""

    def __init__(self, smoke_runner: TrialRunner | None, cancel: threading.Event | None = None) -> None:
        self.smoke_runner = smoke_runner
        self.cancel = cancel or threading.Event()

    def check(
        self, code: Mapping[str, str], files: tuple[str, ...], campaign_id: int, tag: str
    ) -> tuple[FailureLabel, str] | None:
        """None when the code passes; else its label and what went wrong, in words a model can act on."""
        for path in files:
            if path.endswith(".py") and path in code:
                try:
                    compile(code[path], path, "exec")  # compiling runs nothing
                except SyntaxError as exc:
                    return FailureLabel.CRASH, f"{path} line {exc.lineno}: SyntaxError: {exc.msg}"
        if self.smoke_runner is None:
            return None
        job = TrialJob(campaign_id, 0, 0, 0, code, folder=f"preflight/{tag}")
        result = self.smoke_runner.run(job, self.cancel)
        if result.label in PREFLIGHT_FAILURES:
            tail = "\n".join(result.log_tail.splitlines()[-25:])
            return (
                result.label,
                f"a short smoke run failed ({result.label}: {result.reason}); log tail:\n{tail}",
            )
        return None


class DiffImplementer:
    """Applies the diff a proposer wrote with its idea (the catalog, `try`): one attempt, no model."""

    def __init__(self, env: Environment, baseline_code: Mapping[str, str]) -> None:
        self.env = env
        self.baseline_code = baseline_code

    def implement(
        self, idea: Idea, proposal: Proposal, parent: Trial, parent_code: Mapping[str, str]
    ) -> Implementation:
        base = self.baseline_code if proposal.against_baseline else None
        attempt, code = apply_checked(proposal.diff, parent_code, self.env, base)
        return Implementation(code, (attempt,))
