"""Strategies pick the parent of the next trial from the scored population.

`evolve` is steady state: tournaments among the elite with some exploration, and the elite are
never dropped. `best-of-n` always builds on the baseline (the comparison point of the papers).
`random` picks any scored trial. All are pure and deterministic given their random source.
"""

from __future__ import annotations

import bisect
import random
from abc import ABC, abstractmethod
from typing import ClassVar

from autoresearch.domain.model import Direction


class Population:
    """Scored trials, kept sorted best first as they arrive (O(log n) per insert)."""

    def __init__(self, direction: Direction, baseline_id: int) -> None:
        self.direction = direction
        self.baseline_id = baseline_id
        self._ranked: list[tuple[float, int]] = []
        self.scores: dict[int, float] = {}  # each member's standing: its score, or its runs' mean

    def add(self, trial_id: int, score: float) -> None:
        bisect.insort(self._ranked, (self.direction.sort_key(score), trial_id))
        self.scores[trial_id] = score

    def __len__(self) -> int:
        return len(self._ranked)

    def best(self, k: int) -> list[int]:
        return [trial_id for _, trial_id in self._ranked[:k]]

    def ranked(self) -> list[int]:
        return [trial_id for _, trial_id in self._ranked]

    def pick_any(self, rng: random.Random) -> int:
        return self._ranked[rng.randrange(len(self._ranked))][1]


class Strategy(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    by_surface: ClassVar[bool] = False  # ideas take turns over the environment's surfaces

    @abstractmethod
    def choose_parent(self, population: Population, rng: random.Random) -> int:
        """The trial to build the next child on (the baseline while nothing is scored)."""


class Evolve(Strategy):
    name = "evolve"
    description = "steady state: tournaments among the best trials, some exploration, elitism"

    def __init__(self, elite: int = 4, tournament: int = 2, explore: float = 0.2) -> None:
        self.elite, self.tournament, self.explore = elite, tournament, explore

    def choose_parent(self, population: Population, rng: random.Random) -> int:
        if not len(population):
            return population.baseline_id
        if rng.random() < self.explore:
            return population.pick_any(rng)
        pool = population.best(self.elite)
        contenders = rng.sample(range(len(pool)), min(self.tournament, len(pool)))
        return pool[min(contenders)]  # the pool is ranked: the lowest index wins


class Specialists(Evolve):
    name = "specialists"
    description = (
        "evolve, with one proposer per surface of the recipe, each given an equal share of the ideas"
    )
    by_surface = True


class BestOfN(Strategy):
    name = "best-of-n"
    description = "every child from the baseline: independent samples, the papers' comparison point"

    def choose_parent(self, population: Population, rng: random.Random) -> int:
        return population.baseline_id


class RandomParent(Strategy):
    name = "random"
    description = "any scored trial, uniformly"

    def choose_parent(self, population: Population, rng: random.Random) -> int:
        return population.pick_any(rng) if len(population) else population.baseline_id


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Evolve, Specialists, BestOfN, RandomParent)
}
