"""The offline proposer: an environment's catalog of known techniques and numeric mutations.

`catalog.toml` lists techniques (an idea plus the diff that implements it against the baseline)
and mutations (multiply or set one `name = number` line of an editable file). Edits reach the
parent's code through the same patch pipeline as any other proposer's. Techniques of one `group`
are alternatives (two activations, two schedules): a line of descent gets at most one of them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Set
from dataclasses import dataclass

from pydantic import Field, model_validator

from autoresearch.domain.diffs import apply_diff, make_diff
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import IdeaOrigin, Trial
from autoresearch.domain.programs import Programs, program_of
from autoresearch.environment import Environment, StrictModel, read_contract
from autoresearch.errors import ConfigError, PatchError
from autoresearch.services.proposer import Proposal

CATALOG_FILE = "catalog.toml"


class TechniqueEntry(StrictModel):
    key: str = Field(pattern=r"^[a-z0-9_]+$")
    surface: str
    hypothesis: str = Field(min_length=1)
    diff: str
    group: str | None = Field(default=None, pattern=r"^[a-z0-9_]+$")


class MutationEntry(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: str
    surface: str = "hyperparameters"
    factors: list[float] = Field(default_factory=list)
    values: list[float] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None
    integer: bool = False

    @model_validator(mode="after")
    def _has_choices(self) -> MutationEntry:
        if not self.factors and not self.values:
            raise ValueError(f"mutation {self.name!r} needs factors or values")
        return self


class CatalogFile(StrictModel):
    technique: list[TechniqueEntry] = Field(default_factory=list)
    mutation: list[MutationEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _groups_have_alternatives(self) -> CatalogFile:
        members: dict[str, list[str]] = {}
        for t in self.technique:
            if t.group is not None:
                members.setdefault(t.group, []).append(t.key)
        for group, keys in members.items():
            if len(keys) < 2:  # most likely a misspelt group name
                raise ValueError(
                    f"technique {keys[0]!r}: group {group!r} has no other technique; a group names alternatives"
                )
        return self


@dataclass(frozen=True)
class Technique:
    key: str
    surface: str
    hypothesis: str
    diff: str
    group: str | None = None  # alternatives share a group and are never stacked


def load_catalog(env: Environment) -> tuple[list[Technique], list[MutationEntry]]:
    path = env.root / CATALOG_FILE
    if not path.exists():
        return [], []
    parsed = read_contract(path, CatalogFile)
    techniques = []
    for entry in parsed.technique:
        diff_path = env.root / entry.diff
        if not diff_path.is_file():
            raise ConfigError(f"{path}: technique {entry.key!r}: diff file {entry.diff} does not exist")
        techniques.append(
            Technique(entry.key, entry.surface, entry.hypothesis.strip(), diff_path.read_text(), entry.group)
        )
    return techniques, list(parsed.mutation)


def _format(value: float, integer: bool) -> str:
    return str(round(value)) if integer else f"{value:.4g}"


class CatalogProposer:
    """Untried techniques first (those sharing most words with the research goal lead), mixed with mutations.
    Left out for a parent: a technique whose diff does not apply to its code, one of a group its line of
    descent already has, an entry on a surface the preset's metric cannot see, and an entry whose program
    some trial already measures (a mutation that sets the learning rate to 0.0001, after a technique that
    sets it to 1e-4)."""

    def __init__(
        self, env: Environment, goal: str = "", mutation_rate: float = 0.3, preset: str | None = None
    ) -> None:
        techniques, mutations = load_catalog(env)
        unscored = env.spec.unscored(env.preset(preset)[0])
        self.techniques = [t for t in techniques if t.surface not in unscored]
        self.mutations = [m for m in mutations if m.surface not in unscored]
        self._group_of = {t.key: t.group for t in techniques if t.group is not None}
        self.baseline_code = env.read_editable()
        self.programs = Programs(self.baseline_code)
        self.mutation_rate = mutation_rate
        goal_words = _words(goal)
        self._goal_matches = {
            t.key: len(goal_words & _words(f"{t.key.replace('_', ' ')} {t.surface} {t.hypothesis}"))
            for t in self.techniques
        }

    def propose(
        self,
        parent: Trial,
        parent_code: Mapping[str, str],
        lineage: Lineage,
        rng: random.Random,
        surface: str | None = None,
    ) -> Proposal | None:
        if surface is not None:  # that surface's entries, while it has any left for this parent
            on_surface = self._propose(parent, parent_code, lineage, rng, surface)
            if on_surface is not None:
                return on_surface
        return self._propose(parent, parent_code, lineage, rng, None)

    def _propose(
        self,
        parent: Trial,
        parent_code: Mapping[str, str],
        lineage: Lineage,
        rng: random.Random,
        surface: str | None,
    ) -> Proposal | None:
        ancestry = lineage.ancestry_keys(parent.id)
        blocked = ancestry | lineage.tried_on(parent.id)
        groups = {self._group_of[key] for key in ancestry if key in self._group_of}
        measured = {self.programs.of_diff(diff) for diff in lineage.measured_code()}
        fresh = [
            t
            for t in self.techniques
            if t.key not in blocked
            and surface in (None, t.surface)
            and t.group not in groups
            and self._makes_new_program(parent_code, t.diff, measured)
        ]
        mutations = [m for m in self.mutations if surface in (None, m.surface)]
        if fresh and (not mutations or rng.random() >= self.mutation_rate):
            return self._technique(fresh, lineage, rng)
        mutation = self._mutate(mutations, parent_code, blocked, measured, rng)
        if mutation is None and fresh:
            return self._technique(fresh, lineage, rng)
        return mutation

    def _makes_new_program(
        self, parent_code: Mapping[str, str], technique_diff: str, measured: Set[str]
    ) -> bool:
        """Whether the technique applies to the parent's code as the implementer will apply it (3-way
        against the baseline), making a program no trial measures yet. One that edits the lines an
        ancestor's technique edited does not apply: proposed, it would only spend a trial on
        patch_failed."""
        try:
            child = apply_diff(parent_code, technique_diff, base=self.baseline_code)
        except PatchError:
            return False
        return program_of(child) not in measured

    def _technique(self, fresh: list[Technique], lineage: Lineage, rng: random.Random) -> Proposal:
        def rank(t: Technique) -> tuple[int, bool]:
            return (-self._goal_matches[t.key], t.key in lineage.tried_keys)

        top = min(rank(t) for t in fresh)
        t = rng.choice([t for t in fresh if rank(t) == top])
        return Proposal(t.hypothesis, IdeaOrigin.CATALOG, t.diff, t.surface, t.key, against_baseline=True)

    def _mutate(
        self,
        mutations: list[MutationEntry],
        parent_code: Mapping[str, str],
        blocked: Set[str],
        measured: Set[str],
        rng: random.Random,
    ) -> Proposal | None:
        options: list[tuple[MutationEntry, str, str, str]] = []
        for m in mutations:
            match = re.search(rf"^{m.name} = ([-+0-9.eE_]+)\s*$", parent_code.get(m.file, ""), re.MULTILINE)
            if not match:
                continue
            current = _format(float(match[1].replace("_", "")), m.integer)
            for target in [float(current) * f for f in m.factors] + list(m.values):
                if m.min is not None:
                    target = max(m.min, target)
                if m.max is not None:
                    target = min(m.max, target)
                new = _format(target, m.integer)
                if new == current or f"{m.name}={new}" in blocked:
                    continue
                text = parent_code[m.file]
                new_text = re.sub(rf"^{m.name} = .*$", f"{m.name} = {new}", text, count=1, flags=re.MULTILINE)
                if program_of({**parent_code, m.file: new_text}) not in measured:
                    options.append((m, current, new, make_diff({m.file: text}, {m.file: new_text})))
        if not options:
            return None
        m, current, new, diff = rng.choice(options)
        return Proposal(
            f"Change {m.name} from {current} to {new}.",
            IdeaOrigin.MUTATION,
            diff,
            m.surface,
            f"{m.name}={new}",
        )


_FILLER = {"first", "then", "lower", "raise", "with", "from", "that", "this", "more", "less", "should"}


def _words(text: str) -> set[str]:
    """Content words: what a goal and a technique must share for the goal to name it."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {w.removesuffix("s") for w in words if len(w) >= 4 and w not in _FILLER}  # plurals match too
