"""The LLM implementer: a unified diff for an idea, revised on a failed apply or preflight (Si et al.)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from autoresearch.adapters.llm.base import LLMError, LLMRequest, Message
from autoresearch.agents import context
from autoresearch.agents.calls import Agents
from autoresearch.agents.prompts import load_prompt
from autoresearch.domain.diffs import recount_hunks
from autoresearch.domain.model import Idea, Role, Trial
from autoresearch.environment import Environment
from autoresearch.services.implementer import (
    Attempt,
    DiffImplementer,
    Implementation,
    Preflight,
    apply_checked,
)
from autoresearch.services.proposer import Proposal, ProposerStopped


def extract_diff(text: str) -> str:
    """The diff in a model's answer: its ```diff (or ```patch, or bare ```) block, else the text from
    the first `--- ` header on."""
    for fence in (r"```(?:diff|patch)[^\n]*\n(.*?)```", r"```[^\n]*\n(.*?)```"):
        blocks = [b for b in re.findall(fence, text, re.DOTALL) if "--- " in b and "+++ " in b]
        if blocks:
            return "\n".join(blocks) if len(blocks) > 1 else blocks[0]
    start = text.find("--- ")
    return text[start:] if start >= 0 else text


class LLMImplementer:
    """Asks the implementer model for a patch; up to `revisions` re-prompts carry the error back."""

    def __init__(
        self,
        agents: Agents,
        env: Environment,
        preset: str,
        goal: str,
        baseline_code: Mapping[str, str],
        preflight: Preflight,
    ) -> None:
        self.agents = agents
        self.env = env
        self.template = load_prompt("implementer")
        self.system = self.template.render("system", **context.environment_values(env, preset, goal))
        self.preflight = preflight
        self.given = DiffImplementer(env, baseline_code)  # ideas that come with their own diff

    def implement(
        self, idea: Idea, proposal: Proposal, parent: Trial, parent_code: Mapping[str, str]
    ) -> Implementation:
        if proposal.diff:
            return self.given.implement(idea, proposal, parent, parent_code)
        user = self.template.render(
            "user",
            surface=idea.surface or "any surface",
            hypothesis=idea.hypothesis,
            rationale=idea.rationale,
            parent_code=context.code_block(parent_code),
        )
        messages: tuple[Message, ...] = (Message("user", user, cache=True),)
        attempts: list[Attempt] = []
        for number in range(1, self.agents.config.revisions + 2):
            request = LLMRequest(system=self.system, messages=messages, max_tokens=8192)
            try:
                answer = self.agents.ask(
                    Role.IMPLEMENTER, self.template.tag, request, idea_id=idea.id, surface=idea.surface
                )
            except LLMError as exc:  # not the idea's fault: stop, and let a later `resume` carry on
                raise ProposerStopped(f"the implementer's model is not answering: {exc}") from exc
            diff = recount_hunks(extract_diff(answer.text))
            attempt, code = apply_checked(diff, parent_code, self.env, llm_call_id=answer.call.id)
            if code is not None:
                failed = self.preflight.check(code, attempt.files, idea.campaign_id, f"{idea.id}-{number}")
                if failed is None:
                    return Implementation(code, (*attempts, attempt))
                label, problem = failed
                attempt = replace(attempt, error=f"preflight: {problem}", label=label)
            attempts.append(attempt)
            messages = (
                *messages,
                Message("assistant", answer.text),
                Message("user", self.template.render("revision", error=attempt.error)),
            )
        return Implementation(None, tuple(attempts))
