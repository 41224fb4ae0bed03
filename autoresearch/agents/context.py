"""What the agents' prompts say about an environment and a lineage: one place, so every prompt agrees."""

from __future__ import annotations

from collections.abc import Mapping

from autoresearch.domain.diffs import apply_diff, make_diff
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import Direction, IdeaOrigin, Trial, TrialStatus
from autoresearch.environment import Environment

DIFF_CHARS = 3000  # longer diffs are cut in prompts: the hypothesis says what they do
LOG_LINES = 12


def code_block(code: Mapping[str, str]) -> str:
    return "\n\n".join(f"### {path}\n```\n{text.rstrip()}\n```" for path, text in sorted(code.items()))


def clip(text: str, limit: int = DIFF_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters]"


def budget_text(env: Environment, preset: str) -> str:
    _, spec = env.preset(preset)
    parts = [f"{spec.budget.wall_clock_s:g} s of wall clock"]
    if spec.budget.steps:
        parts.append(f"{spec.budget.steps} steps")
    if spec.budget.max_params:
        parts.append(f"at most {spec.budget.max_params:,} parameters")
    if spec.budget.max_bytes:
        parts.append(f"a saved model of at most {spec.budget.max_bytes:,} bytes as the evaluator measures it")
    return ", ".join(parts)


def environment_values(env: Environment, preset: str, goal: str) -> dict[str, str]:
    """The values every role's system prompt may use."""
    metric = env.spec.metric
    return {
        "goal": goal or "improve the metric",
        "environment": env.name,
        "description": " ".join(env.spec.description.split()),
        "metric": metric.name,
        "direction": "lower" if metric.direction is Direction.MINIMIZE else "higher",
        "unit": f" (in {metric.unit})" if metric.unit else "",
        "budget": budget_text(env, preset),
        "surfaces": ", ".join(env.spec.surfaces) or "any part of the recipe",
        "editable": ", ".join(env.editable_files),
        "protected": ", ".join(env.spec.files.protected),
    }


def score_text(trial: Trial | None) -> str:
    if trial is None:
        return "no score"
    if trial.is_scored and trial.score is not None:
        return f"score {trial.score:.4f}"
    return f"{trial.status}" + (f" ({trial.label})" if trial.label else "")


def path_text(lineage: Lineage, trial: Trial) -> str:
    """The ideas stacked from the baseline to the trial, oldest first."""
    chain = [*reversed(lineage.ancestors(trial.id)), trial]
    titles = [lineage.idea_of(t).title for t in chain if lineage.idea_of(t).origin is not IdeaOrigin.BASELINE]
    return " -> ".join(titles) if titles else "it is the baseline"


def best_text(lineage: Lineage, direction: Direction, k: int = 4) -> str:
    scored = [t for t in lineage.trials.values() if t.is_search and t.is_scored and t.score is not None]
    scored.sort(key=lambda t: direction.sort_key(t.score or 0.0))
    if not scored:
        return "none yet"
    out = []
    for t in scored[:k]:
        head = f"- trial {t.number}, {score_text(t)}: {path_text(lineage, t)}"
        if t.code_diff:
            head += f"\n```diff\n{clip(t.code_diff)}\n```"
        out.append(head)
    return "\n".join(out)


def failures_text(lineage: Lineage, k: int = 5) -> str:
    failed = [t for t in lineage.trials.values() if t.status is TrialStatus.FAILED]
    failed.sort(key=lambda t: t.number)
    if not failed:
        return "none yet"
    out = []
    for t in failed[-k:]:
        tail = "\n".join(t.log_tail.splitlines()[-LOG_LINES:])
        line = f"- trial {t.number} ({lineage.idea_of(t).title}): {t.label}: {clip(t.reason, 400)}"
        out.append(line + (f"\n  log tail:\n{tail}" if tail else ""))
    return "\n".join(out)


def notes_text(lineage: Lineage, k: int = 8) -> str:
    noted = sorted((t for t in lineage.trials.values() if t.analysis), key=lambda t: t.number)
    return "\n".join(f"- trial {t.number}: {t.analysis}" for t in noted[-k:]) or "none yet"


def diff_against_parent(lineage: Lineage, trial: Trial, baseline_code: Mapping[str, str]) -> str:
    """What the trial changed on top of its parent, as the analyst sees it."""
    parent = lineage.trials.get(trial.parent_id) if trial.parent_id is not None else None
    parent_code = (
        apply_diff(baseline_code, parent.code_diff) if parent and parent.code_diff else baseline_code
    )
    child_code = apply_diff(baseline_code, trial.code_diff) if trial.code_diff else None
    if child_code is None:
        return lineage.idea_of(trial).diff or "(no patch was accepted)"
    return make_diff(parent_code, child_code) or "(no change)"
