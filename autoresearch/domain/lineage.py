"""The parent -> child graph over a campaign's trials, and what each line of descent has tried."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from autoresearch.domain.model import Idea, Trial


class Lineage:
    """Incrementally maintained: adding a trial costs O(1) apart from copying its ancestry's keys."""

    def __init__(self) -> None:
        self.trials: dict[int, Trial] = {}
        self.ideas: dict[int, Idea] = {}
        self._children: dict[int | None, list[int]] = defaultdict(list)
        self._ancestry_keys: dict[int | None, frozenset[str]] = {}
        self._tried_on: dict[int | None, set[str]] = defaultdict(set)
        self.tried_keys: set[str] = set()

    @classmethod
    def of(cls, ideas: Iterable[Idea], trials: Iterable[Trial]) -> Lineage:
        lineage = cls()
        for idea in ideas:
            lineage.add_idea(idea)
        for trial in sorted(trials, key=lambda t: t.number):
            lineage.add(trial)
        return lineage

    def add_idea(self, idea: Idea) -> None:
        """An idea counts as tried on its parent from the moment it is proposed, before it has a trial:
        otherwise ideas proposed while others are implemented or queued repeat them."""
        self.ideas[idea.id] = idea
        if idea.key and idea.parent_trial_ids:
            self._tried_on[idea.parent_trial_ids[0]].add(idea.key)
            self.tried_keys.add(idea.key)

    def add(self, trial: Trial) -> None:
        """Add a new trial, or replace one whose state changed."""
        known = trial.id in self.trials
        self.trials[trial.id] = trial
        if known:
            return
        key = self.ideas[trial.idea_id].key if trial.idea_id in self.ideas else ""
        inherited = self._ancestry_keys.get(trial.parent_id, frozenset())
        self._ancestry_keys[trial.id] = inherited | {key} if key else inherited
        if trial.is_search:  # a confirmation re-runs its parent's program: it is no child of it
            self._children[trial.parent_id].append(trial.id)

    def ancestry_keys(self, trial_id: int) -> frozenset[str]:
        """The keys of every idea on the path from the baseline to this trial, itself included."""
        return self._ancestry_keys.get(trial_id, frozenset())

    def tried_on(self, trial_id: int) -> set[str]:
        """Keys of the ideas proposed on this trial, whether or not their trials exist yet."""
        return self._tried_on.get(trial_id, set())

    def measured_code(self) -> set[str]:
        """The code (as diffs against the baseline) of every trial that ran, runs or waits to run."""
        return {t.code_diff for t in self.trials.values() if t.measures_its_code}

    def children(self, trial_id: int | None) -> list[int]:
        return self._children.get(trial_id, [])

    def ancestors(self, trial_id: int) -> list[Trial]:
        """From the trial's parent up to the baseline."""
        out: list[Trial] = []
        parent = self.trials[trial_id].parent_id
        while parent is not None:
            out.append(self.trials[parent])
            parent = self.trials[parent].parent_id
        return out

    def idea_of(self, trial: Trial) -> Idea:
        return self.ideas[trial.idea_id]
