"""The analyst: a short note on each finished trial, grounded in the evaluator's verdict, for later prompts."""

from __future__ import annotations

from collections.abc import Mapping

from autoresearch.adapters.llm.base import LLMError, LLMRequest, Message
from autoresearch.agents import context
from autoresearch.agents.calls import Agents, BudgetSpent
from autoresearch.agents.prompts import load_prompt
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import Role, Trial
from autoresearch.environment import Environment

NOTE_CHARS = 800


def outcome_text(trial: Trial, metric: str) -> str:
    if trial.is_scored and trial.score is not None:
        return f"scored {metric} = {trial.score:.4f}"
    return f"{trial.status}, label {trial.label}: {context.clip(trial.reason, 600)}"


class LLMAnalyst:
    def __init__(self, agents: Agents, env: Environment, preset: str, goal: str) -> None:
        self.agents = agents
        self.env = env
        self.template = load_prompt("analyst")
        self.system = self.template.render("system", **context.environment_values(env, preset, goal))
        self.baseline_code: Mapping[str, str] = env.read_editable()
        self.silenced = ""  # why notes stopped (a budget), said once

    def analyse(self, trial: Trial, lineage: Lineage, baseline_id: int) -> str | None:
        if self.silenced:
            return None
        parent = lineage.trials.get(trial.parent_id) if trial.parent_id is not None else None
        idea = lineage.idea_of(trial)
        user = self.template.render(
            "user",
            number=trial.number,
            hypothesis=idea.hypothesis,
            outcome=outcome_text(trial, self.env.spec.metric.name),
            parent_number=parent.number if parent else "-",
            parent_score=context.score_text(parent),
            baseline_score=context.score_text(lineage.trials.get(baseline_id)),
            metrics=", ".join(f"{k}={v:g}" for k, v in trial.metrics.items()) or "none",
            diff=context.clip(context.diff_against_parent(lineage, trial, self.baseline_code)),
            log_tail="\n".join(trial.log_tail.splitlines()[-context.LOG_LINES :]) or "(empty)",
        )
        request = LLMRequest(system=self.system, messages=(Message("user", user),), max_tokens=400)
        try:
            answer = self.agents.ask(Role.ANALYST, self.template.tag, request, trial_id=trial.id)
        except BudgetSpent as exc:
            self.silenced = str(exc)
            return None
        except LLMError:
            return None  # a missing note loses nothing: the call and its error are on record
        note = " ".join(answer.text.split())
        return note if len(note) <= NOTE_CHARS else note[: NOTE_CHARS - 1] + "…"
