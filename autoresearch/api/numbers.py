"""Trial ids to trial numbers, for answers that name a trial's parent by number.

A trial's number is given when the trial is made and never changes, so a number once read is kept: a
page of trials costs one query for the parents off the page the first time, none after."""

from __future__ import annotations

from collections.abc import Iterable

from autoresearch.domain.model import Trial
from autoresearch.services.store import Store


class TrialNumbers:
    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity  # ids kept at most (about 100 bytes each); then it starts again
        self._known: dict[int, int] = {}

    def learn(self, trials: Iterable[Trial]) -> None:
        if len(self._known) > self.capacity:
            self._known.clear()
        self._known.update((t.id, t.number) for t in trials)

    def of(self, store: Store, trial_ids: Iterable[int | None]) -> dict[int, int]:
        """The numbers of these trials (None is skipped), reading those not known yet in one query."""
        wanted = {i for i in trial_ids if i is not None}
        found = {i: n for i in wanted if (n := self._known.get(i)) is not None}
        if len(self._known) > self.capacity:
            self._known.clear()
        read = store.trial_numbers(wanted - found.keys()) if wanted - found.keys() else {}
        self._known.update(read)
        return found | read

    def number(self, store: Store, trial_id: int | None) -> int | None:
        return None if trial_id is None else self.of(store, [trial_id])[trial_id]
