"""What a proposer gives the controller, and the implementer that turns it into a child's code."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from autoresearch.domain.diffs import apply_diff, touched_paths
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import FailureLabel, IdeaOrigin, Trial
from autoresearch.environment import Environment
from autoresearch.errors import PatchError


@dataclass(frozen=True)
class Proposal:
    hypothesis: str
    origin: IdeaOrigin
    diff: str
    surface: str = ""
    key: str = ""
    against_baseline: bool = False  # the diff was written against the baseline, not the parent


class Proposer(Protocol):
    def propose(
        self, parent: Trial, parent_code: Mapping[str, str], lineage: Lineage, rng: random.Random
    ) -> Proposal | None:
        """The next idea to try on `parent`, or None when this proposer has nothing left for it."""
        ...


@dataclass(frozen=True)
class Implementation:
    """The outcome of one implementation attempt: the child's code, or why there is none."""

    code: Mapping[str, str] | None
    files: tuple[str, ...]
    label: FailureLabel | None = None
    error: str = ""


def implement(
    proposal: Proposal, parent_code: Mapping[str, str], baseline_code: Mapping[str, str], env: Environment
) -> Implementation:
    """Check the diff's legality, then apply it to the parent's code (3-way against the baseline)."""
    try:
        files = tuple(sorted(touched_paths(proposal.diff)))
    except PatchError as exc:
        return Implementation(None, (), FailureLabel.PATCH_FAILED, str(exc))
    for path in files:
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts or env.is_protected(path):
            return Implementation(
                None, files, FailureLabel.ILLEGAL_EDIT, f"the patch edits protected path {path}"
            )
        if not env.is_editable(path):
            return Implementation(None, files, FailureLabel.ILLEGAL_EDIT, f"{path} is not an editable file")
    try:
        base = baseline_code if proposal.against_baseline else None
        code = apply_diff(parent_code, proposal.diff, base=base)
    except PatchError as exc:
        return Implementation(None, files, FailureLabel.PATCH_FAILED, str(exc))
    return Implementation(code, files)
