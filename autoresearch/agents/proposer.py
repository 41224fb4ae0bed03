"""The LLM proposer: ideas as JSON, validated, from the goal and the campaign's lineage."""

from __future__ import annotations

import json
import random
import re
from collections import deque
from collections.abc import Mapping

from pydantic import BaseModel, Field, ValidationError

from autoresearch.adapters.llm.base import LLMError, LLMRequest, Message
from autoresearch.agents import context
from autoresearch.agents.calls import Agents
from autoresearch.agents.prompts import load_prompt
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import IdeaOrigin, Role, Trial
from autoresearch.environment import Environment
from autoresearch.errors import describe_invalid
from autoresearch.services.proposer import Proposal, ProposerStopped

FORMAT_RETRIES = 2  # re-asks after an answer that is not the JSON asked for
FAILED_ROUNDS_LIMIT = 3  # rounds in a row without a usable idea before the proposer stops


class IdeaDraft(BaseModel):
    hypothesis: str = Field(min_length=10, max_length=2000)
    rationale: str = Field(default="", max_length=4000)
    surface: str = ""
    expected_effect: str = Field(default="", max_length=500)


class IdeaBatch(BaseModel):
    ideas: list[IdeaDraft] = Field(min_length=1)


def parse_ideas(text: str, surfaces: list[str]) -> list[IdeaDraft]:
    """The ideas in a model's answer: a JSON object, bare or in a ``` fence. ValueError says what is wrong."""
    fenced = re.search(r"```(?:json)?\s*\n(.*?)```", text, re.DOTALL)
    body = fenced[1] if fenced else text
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the answer")
    try:
        batch = IdeaBatch.model_validate(json.loads(body[start : end + 1]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    except ValidationError as exc:
        raise ValueError(describe_invalid(exc.errors()[0])) from exc
    for draft in batch.ideas:
        if surfaces and draft.surface and draft.surface not in surfaces:
            raise ValueError(f"surface {draft.surface!r} is not one of {', '.join(surfaces)}")
    return batch.ideas


class LLMProposer:
    """Asks the proposer model for `ideas_per_call` ideas for a parent and hands them out one at a time."""

    def __init__(self, agents: Agents, env: Environment, preset: str, goal: str) -> None:
        self.agents = agents
        self.env = env
        self.template = load_prompt("proposer")
        self.values = context.environment_values(env, preset, goal)
        self.queued: dict[tuple[int, str | None], deque[Proposal]] = {}
        self.failed_rounds = 0

    def propose(
        self,
        parent: Trial,
        parent_code: Mapping[str, str],
        lineage: Lineage,
        rng: random.Random,
        surface: str | None = None,
    ) -> Proposal | None:
        queue = self.queued.setdefault((parent.id, surface), deque())
        if not queue:
            queue.extend(self._ask(parent, parent_code, lineage, surface))
        return queue.popleft() if queue else None

    def _request(
        self, parent: Trial, parent_code: Mapping[str, str], lineage: Lineage, surface: str | None
    ) -> LLMRequest:
        system = self.template.render("system", **self.values)
        if surface is not None:
            system += "\n\n" + self.template.render("specialist", surface=surface)
        tried = [lineage.ideas[i].hypothesis for i in _ideas_on(lineage, parent.id)]
        tried += [p.hypothesis for (pid, _), q in self.queued.items() if pid == parent.id for p in q]
        user = self.template.render(
            "user",
            parent_number=parent.number,
            parent_score=context.score_text(parent),
            parent_path=context.path_text(lineage, parent),
            parent_code=context.code_block(parent_code),
            best=context.best_text(lineage, self.env.spec.metric.direction),
            failures=context.failures_text(lineage),
            notes=context.notes_text(lineage),
            tried="\n".join(f"- {h}" for h in tried) or "nothing yet",
            k=self.agents.config.ideas_per_call,
            focus=f" Every idea changes the {surface}." if surface else "",
        )
        return LLMRequest(system=system, messages=(Message("user", user, cache=True),))

    def _ask(
        self, parent: Trial, parent_code: Mapping[str, str], lineage: Lineage, surface: str | None
    ) -> list[Proposal]:
        request = self._request(parent, parent_code, lineage, surface)
        problem = ""
        for _ in range(1 + FORMAT_RETRIES):
            try:
                answer = self.agents.ask(Role.PROPOSER, self.template.tag, request, surface=surface or "")
            except LLMError as exc:
                if not exc.retryable:  # a bad key or model name: no later round can do better
                    raise ProposerStopped(f"the proposer's model refused the request: {exc}") from exc
                problem = str(exc)
                break  # the provider failed after its retries: perhaps the next round gets through
            try:
                drafts = parse_ideas(answer.text, self.env.spec.surfaces)
            except ValueError as exc:
                problem = str(exc)
                self.agents.reject(answer.call, f"unusable proposal: {problem}")
                request = LLMRequest(
                    system=request.system,
                    messages=(
                        *request.messages,
                        Message("assistant", answer.text),
                        Message("user", self.template.render("retry", error=problem)),
                    ),
                )
                continue
            self.failed_rounds = 0
            return [
                Proposal(
                    d.hypothesis.strip(),
                    IdeaOrigin.LLM,
                    surface=surface or d.surface,  # a specialist's ideas are on its surface
                    rationale=" ".join(
                        part for part in (d.rationale.strip(), _expected(d.expected_effect)) if part
                    ),
                    llm_call_id=answer.call.id,
                )
                for d in drafts
            ]
        self.failed_rounds += 1
        if self.failed_rounds >= FAILED_ROUNDS_LIMIT:
            raise ProposerStopped(
                f"the proposer's model gave no usable ideas {self.failed_rounds} rounds in a row "
                f"(last: {problem})"
            )
        return []


def _expected(effect: str) -> str:
    return f"Expected effect: {effect.strip()}." if effect.strip() else ""


def _ideas_on(lineage: Lineage, parent_id: int) -> list[int]:
    """Ideas already tried as children of the parent."""
    return [lineage.trials[child].idea_id for child in lineage.children(parent_id)]
