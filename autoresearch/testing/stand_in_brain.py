"""A scripted "model" for the stand-in LLM server, played from an environment's catalog.

It answers the proposer, implementer and analyst prompts the way a model would, so the whole LLM
path (prompts, JSON ideas, diffs, revisions, notes, budgets) runs offline: `--proposer stand-in`.
It also makes the mistakes worth showing: its first proposal is malformed JSON, every other
first patch has a stale context line (fixed on revision), and each batch of ideas repeats one
idea in other words (for the novelty gate).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Mapping

from autoresearch.adapters.catalog import MutationEntry, Technique, load_catalog
from autoresearch.domain.diffs import apply_diff, make_diff
from autoresearch.domain.model import headline
from autoresearch.environment import Environment
from autoresearch.errors import PatchError
from autoresearch.testing.llm_server import Reply, StandInCall

PARAPHRASE = "Put differently: "
_CODE_BLOCK = re.compile(r"^### (\S+)\n```\n(.*?)\n```", re.DOTALL | re.MULTILINE)


class CatalogBrain:
    def __init__(self, env: Environment, *, malformed_first: bool = True, stale_every: int = 2) -> None:
        self.env = env
        self.techniques, self.mutations = load_catalog(env)
        self.baseline = env.read_editable()
        self.malformed_first = malformed_first
        self.stale_every = stale_every
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._implemented = 0

    def __call__(self, call: StandInCall) -> Reply:
        if "You are the proposer" in call.system:
            return Reply(text=self._propose(call))
        if "You are the implementer" in call.system:
            return Reply(text=self._implement(call))
        if "You are the analyst" in call.system:
            return Reply(text=self._analyse(call))
        return Reply(text="I can only play the proposer, the implementer and the analyst.")

    # proposer -------------------------------------------------------------------------------------
    def _propose(self, call: StandInCall) -> str:
        if self.malformed_first and next(self._counter) == 0:
            return 'Sure! Here are some ideas: {"ideas": [{"hypothesis": "Use a larger model"'  # cut short
        prompt = "\n".join(text for _, text in call.messages)
        wanted = re.search(r"Propose (\d+) new", prompt)
        k = int(wanted[1]) if wanted else 3
        specialist = re.search(r"You are the (\S+) specialist", call.system)
        surface = specialist[1] if specialist else None
        code = _code_in(prompt)
        ideas = [
            {
                "hypothesis": t.hypothesis,
                "rationale": f"A known technique ({t.key}).",
                "surface": t.surface,
                "expected_effect": "lower metric",
            }
            for t in self.techniques
            if surface in (None, t.surface)
            and headline(t.hypothesis) not in prompt  # how the lineage names it
        ]
        ideas += [
            {
                "hypothesis": h,
                "rationale": "A nearby setting may suit this budget better.",
                "surface": m.surface,
                "expected_effect": "small",
            }
            for m in self.mutations
            if surface in (None, m.surface)
            for h in _mutation_ideas(m, code)
            if h not in prompt
        ]
        chosen = ideas[: max(1, k - 1)] if len(ideas) > 1 and k > 1 else ideas[:k]
        if len(chosen) >= 1 and k > 1:
            chosen.append(chosen[0] | {"hypothesis": PARAPHRASE + chosen[0]["hypothesis"]})
        return json.dumps({"ideas": chosen}, indent=1)

    # implementer ----------------------------------------------------------------------------------
    def _implement(self, call: StandInCall) -> str:
        first = call.messages[0][1]
        idea = re.search(r"^Idea \([^)]*\): (.*)$", first, re.MULTILINE)
        hypothesis = idea[1].removeprefix(PARAPHRASE) if idea else ""
        parent = _code_in(first)
        child = self._child_code(hypothesis, parent)
        if child is None:
            return "I could not see where this idea goes in the code shown."
        diff = make_diff(parent, child)
        revising = len(call.messages) > 1
        if not revising:
            with self._lock:
                self._implemented += 1
                stale = self.stale_every > 0 and self._implemented % self.stale_every == 1
            if stale:
                diff = _with_stale_context(diff)
        return f"Here is the patch.\n\n```diff\n{diff}```\n"

    def _child_code(self, hypothesis: str, parent: Mapping[str, str]) -> dict[str, str] | None:
        technique = next((t for t in self.techniques if t.hypothesis == hypothesis), None)
        if technique is not None:
            return _merged(technique, parent, self.baseline)
        change = re.fullmatch(r"Change (\w+) from (\S+) to (\S+)\.", hypothesis)
        mutation = next((m for m in self.mutations if change and m.name == change[1]), None)
        if change is None or mutation is None or mutation.file not in parent:
            return None
        text = re.sub(
            rf"^{change[1]} = .*$",
            f"{change[1]} = {change[3]}",
            parent[mutation.file],
            count=1,
            flags=re.MULTILINE,
        )
        return {**parent, mutation.file: text}

    # analyst --------------------------------------------------------------------------------------
    def _analyse(self, call: StandInCall) -> str:
        prompt = call.messages[-1][1]
        outcome = _line(prompt, "Outcome: ")
        parent = re.search(r"^Parent \(trial (\S+)\): (.*?)\. Baseline: (.*?)\.$", prompt, re.MULTILINE)
        relation = (
            f" Its parent (trial {parent[1]}) had {parent[2]}; the baseline {parent[3]}." if parent else ""
        )
        scores = [float(x) for x in re.findall(r"score (-?[0-9.]+)", outcome + (parent[2] if parent else ""))]
        verdict = ""
        if len(scores) == 2:
            verdict = (
                " It improved on its parent." if scores[0] < scores[1] else " It did not beat its parent."
            )
        if "label" in outcome:
            verdict = " The change itself failed: fix that before building on it."
        return f"The trial {outcome}.{relation}{verdict}"


def _code_in(prompt: str) -> dict[str, str]:
    return {path: text + "\n" for path, text in _CODE_BLOCK.findall(prompt)}


def _line(text: str, prefix: str) -> str:
    return next((line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)), "")


def _merged(
    technique: Technique, parent: Mapping[str, str], baseline: Mapping[str, str]
) -> dict[str, str] | None:
    try:
        return dict(apply_diff(parent, technique.diff, base=baseline))
    except PatchError:
        return None


def _mutation_ideas(m: MutationEntry, code: Mapping[str, str]) -> list[str]:
    found = re.search(rf"^{m.name} = ([-+0-9.eE_]+)\s*$", code.get(m.file, ""), re.MULTILINE)
    if not found:
        return []
    current = float(found[1].replace("_", ""))
    targets = [current * f for f in m.factors] + list(m.values)
    shown = [str(round(t)) if m.integer else f"{t:.4g}" for t in targets]
    return [f"Change {m.name} from {found[1]} to {t}." for t in shown if t != found[1]]


def _with_stale_context(diff: str) -> str:
    """The diff with its first context line changed, as a model misremembering the code writes it."""
    lines = diff.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(" ") and line.strip():
            lines[i] = line.rstrip("\n") + "  # (as remembered)\n"
            break
    return "".join(lines)
