"""What a proposer gives the controller: the next idea to try on a parent."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import Idea, IdeaOrigin, Trial
from autoresearch.errors import AutoresearchError


@dataclass(frozen=True)
class Proposal:
    hypothesis: str
    origin: IdeaOrigin
    diff: str = ""  # empty: the implementer writes the patch
    surface: str = ""
    key: str = ""
    against_baseline: bool = False  # the diff was written against the baseline, not the parent
    rationale: str = ""
    llm_call_id: int | None = None  # the proposer's call that wrote it


class ProposerStopped(AutoresearchError):
    """The proposer can go on no longer (a budget is spent, its model keeps failing): no new ideas."""


class Proposer(Protocol):
    def propose(
        self,
        parent: Trial,
        parent_code: Mapping[str, str],
        lineage: Lineage,
        rng: random.Random,
        surface: str | None = None,
    ) -> Proposal | None:
        """The next idea to try on `parent` (on `surface` when given, if it can), or None when this
        proposer has nothing left for it. ProposerStopped when it can propose nothing more at all."""
        ...


def proposal_of(idea: Idea) -> Proposal:
    """The proposal an idea on record came from, to implement it again."""
    return Proposal(
        idea.hypothesis,
        idea.origin,
        idea.diff,
        idea.surface,
        idea.key,
        against_baseline=idea.origin in (IdeaOrigin.CATALOG, IdeaOrigin.USER),
        rationale=idea.rationale,
        llm_call_id=idea.llm_call_id,
    )
