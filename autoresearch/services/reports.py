"""Read models of what campaigns recorded: the rows and reports the CLI (and later the API) show."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from autoresearch.domain.confirmation import Confirmed, Estimate, verdict
from autoresearch.domain.model import (
    Campaign,
    Direction,
    Idea,
    IdeaOrigin,
    LLMCall,
    Role,
    Trial,
    TrialRole,
    TrialStatus,
    Usage,
)
from autoresearch.environment import find_environment
from autoresearch.errors import AutoresearchError
from autoresearch.services.store import Store
from autoresearch.settings import Settings

DirectionOf = Callable[[str], Direction]


def _ranked(trials: list[Trial], direction: Direction) -> list[Trial]:
    """The search's scored trials, best first by their search score."""
    scored = [t for t in trials if t.is_search and t.is_scored and t.score is not None]
    return sorted(scored, key=lambda t: (direction.sort_key(t.score or 0.0), t.number))


def _baseline(trials: list[Trial], ideas: dict[int, Idea]) -> Trial | None:
    """The scored search run of the baseline idea, else its latest attempt."""
    runs = [t for t in trials if t.is_search and ideas[t.idea_id].origin is IdeaOrigin.BASELINE]
    return next((t for t in runs if t.is_scored), runs[-1] if runs else None)


def _estimate(scores: Mapping[int, float]) -> dict[str, Any] | None:
    if not scores:
        return None
    estimate = Estimate(tuple(scores[seed] for seed in sorted(scores)))
    return {"n": estimate.n, "mean": estimate.mean, "sd": estimate.sd, "scores": dict(sorted(scores.items()))}


def confirmation_report(
    trials: list[Trial], ideas: Mapping[int, Idea], direction: Direction
) -> dict[str, Any] | None:
    """The campaign's confirmed result: each confirmed program's search score beside its scores on fresh
    seeds (the search's split and the test split), its difference to the baseline with a 95 % interval,
    and a sentence that says whether anything beat the baseline beyond noise. None without confirmations."""
    baseline = _baseline(trials, dict(ideas))
    found = verdict(trials, baseline, direction) if baseline is not None else None
    if found is None:
        return None

    def program(c: Confirmed) -> dict[str, Any]:
        difference = found.differences.get(c.trial.id)
        return {
            "trial": c.trial.number,
            "idea": ideas[c.trial.idea_id].title,
            "search_score": c.trial.score,
            "val": _estimate(c.val),
            "test": _estimate(c.test),
            "failed": c.failed,
            "train_seconds": c.measured("train_seconds"),  # what it spent
            "params": c.measured("params"),
            "difference": asdict(difference) if difference is not None else None,
            "beyond_noise": difference is not None and difference.beyond_noise(direction),
        }

    pending = sum(t.role is TrialRole.CONFIRM and not t.status.is_terminal for t in trials)
    report = {
        "split": found.split,
        "baseline": program(found.baseline) | {"difference": None, "beyond_noise": False},
        "candidates": [program(c) for c in found.candidates],
        "winner": found.winner.trial.number if found.winner else None,
        "improved": found.improved,
        "pending": pending,
        "direction": str(direction),
    }
    return report | {"summary": _confirmation_summary(report)}


def campaign_confirmation(
    store: Store, campaign: Campaign, direction: Direction | None
) -> dict[str, Any] | None:
    """The confirmation report of a campaign that confirms; only those read every trial for it."""
    if direction is None or not campaign.confirm_seeds:
        return None
    ideas = {idea.id: idea for idea in store.list_ideas(campaign.id)}
    return confirmation_report(store.list_trials(campaign.id), ideas, direction)


def _confirmation_summary(report: dict[str, Any]) -> str:
    split = "the test split" if report["split"] == "test" else "fresh seeds of the search's split"
    base = report["baseline"][report["split"]]
    noise = (
        f" (baseline {base['mean']:.4f}, sd {base['sd']:.4f} over {base['n']} seeds)"
        if base and base["sd"]
        else ""
    )
    if report["pending"]:
        return f"confirmation is running: {report['pending']} trials to go"
    if report["winner"] is None:
        return f"nothing to confirm: no program other than the baseline scored{noise}"
    winner = next(c for c in report["candidates"] if c["trial"] == report["winner"])
    difference, measured = winner["difference"], winner[report["split"]]
    if difference is None or measured is None:
        return f"trial {winner['trial']} could not be compared with the baseline on {split}"
    interval = f"95 % interval [{difference['low']:+.4f}, {difference['high']:+.4f}]"
    said = (
        f"trial {winner['trial']} ({winner['idea']}): {measured['mean']:.4f} on {split} over "
        f"{measured['n']} seeds, {difference['mean']:+.4f} vs the baseline, {interval}"
    )
    if report["improved"]:
        return f"improved beyond noise: {said}{noise}"
    worse = difference["low"] > 0 if report["direction"] == Direction.MINIMIZE else difference["high"] < 0
    return f"nothing beyond noise: {said}, {'worse than the baseline' if worse else 'which includes zero'}{noise}"


def campaign_dict(campaign: Campaign) -> dict[str, Any]:
    return asdict(campaign)


def trial_dict(trial: Trial) -> dict[str, Any]:
    data = asdict(trial)
    data["metrics"] = dict(trial.metrics)
    return data


def direction_finder(settings: Settings) -> DirectionOf:
    """Each environment's metric direction, by name; minimise for an environment no longer installed
    (its campaigns still list)."""

    def direction_of(environment: str) -> Direction:
        try:
            return find_environment(environment, settings.environment_search_path).spec.metric.direction
        except AutoresearchError:
            return Direction.MINIMIZE

    return direction_of


def campaign_rows(store: Store, direction_of: DirectionOf) -> list[dict[str, Any]]:
    rows = []
    for campaign in store.list_campaigns():
        trials = store.list_trials(campaign.id)
        ideas = {i.id: i for i in store.list_ideas(campaign.id)}
        ranked = _ranked(trials, direction_of(campaign.environment))
        baseline = _baseline(trials, ideas)
        rows.append(
            campaign_dict(campaign)
            | {
                "trials_done": sum(
                    t.spends_search_budget and t.status in (TrialStatus.SUCCEEDED, TrialStatus.FAILED)
                    for t in trials
                ),
                "baseline_score": baseline.score if baseline else None,
                "best_score": ranked[0].score if ranked else None,
                "best_trial": ranked[0].number if ranked else None,
            }
        )
    return rows


def path_to(store: Store, trial: Trial) -> list[Trial]:
    """From the baseline down to `trial`."""
    path = [trial]
    while path[-1].parent_id is not None:
        path.append(store.get_trial(path[-1].parent_id))
    return path[::-1]


def campaign_report(
    store: Store, campaign: Campaign, direction: Direction, *, top: int = 10
) -> dict[str, Any]:
    trials = store.list_trials(campaign.id)
    ideas = {i.id: i for i in store.list_ideas(campaign.id)}
    by_id = {t.id: t for t in trials}
    ranked = _ranked(trials, direction)
    best, baseline = (ranked[0] if ranked else None), _baseline(trials, ideas)

    def number_of(trial_id: int | None) -> int | None:
        return by_id[trial_id].number if trial_id in by_id else None

    confirmed = confirmation_report(trials, ideas, direction)
    confirmed_by_number = {c["trial"]: c for c in (confirmed or {}).get("candidates", [])}
    if confirmed is not None:
        confirmed_by_number[confirmed["baseline"]["trial"]] = confirmed["baseline"]

    def mean_of(number: int, split: str) -> float | None:
        estimate = confirmed_by_number.get(number, {}).get(split)
        return estimate["mean"] if estimate else None

    return {
        "campaign": campaign_dict(campaign),
        "counts": dict(sorted(Counter(str(t.status) for t in trials).items())),
        "labels": dict(sorted(Counter(str(t.label) for t in trials if t.label).items())),
        "leaderboard": [
            {
                "id": t.id,
                "number": t.number,
                "parent": number_of(t.parent_id),
                "score": t.score,
                "confirmed": mean_of(t.number, "val"),
                "test": mean_of(t.number, "test"),
                "idea": ideas[t.idea_id].title,
            }
            for t in ranked[:top]
        ],
        "lineage": [
            {
                "id": t.id,
                "number": t.number,
                "parent_id": t.parent_id,
                "status": str(t.status),
                "label": str(t.label) if t.label else None,
                "score": t.score,
                "idea": ideas[t.idea_id].title,
                "role": str(t.role),
            }
            for t in trials
        ],
        "best": trial_dict(best) if best else None,
        "baseline": trial_dict(baseline) if baseline else None,
        "best_diff": best.code_diff if best else "",
        "confirmed": confirmed,
        "llm": llm_report(store, campaign),
        "duplicates": [
            {"id": i.id, "hypothesis": i.hypothesis, "duplicate_of": i.duplicate_of}
            for i in ideas.values()
            if i.duplicate_of is not None
        ],
    }


def llm_report(store: Store, campaign: Campaign) -> dict[str, Any]:
    """Tokens, dollars and trials per role, and the totals against the campaign's budgets."""
    usage = store.llm_usage(campaign.id)
    if not usage and not campaign.agents:
        return {}
    trials = store.list_trials(campaign.id)
    ideas = {i.id: i for i in store.list_ideas(campaign.id)}
    calls = store.list_llm_calls(campaign.id)
    proposed = {ideas[t.idea_id].llm_call_id for t in trials if t.idea_id in ideas}
    trials_of = {
        Role.PROPOSER: sum(ideas[t.idea_id].origin is IdeaOrigin.LLM for t in trials),
        Role.IMPLEMENTER: len(
            {c.idea_id for c in calls if c.role is Role.IMPLEMENTER} & {t.idea_id for t in trials}
        ),
        Role.ANALYST: len({c.trial_id for c in calls if c.role is Role.ANALYST and not c.error}),
    }
    total = sum(usage.values(), Usage())
    return {
        "roles": {
            str(role): usage_dict(u) | {"trials": trials_of[role], "model": campaign.agents.get(str(role))}
            for role, u in sorted(usage.items())
        },
        "total": usage_dict(total),
        "budget": campaign.agents.get("budget", {}),
        "role_budgets": campaign.agents.get("role_budgets", {}),
        "failed_calls": sum(bool(c.error) for c in calls),
        "proposals_without_trials": sum(
            c.role is Role.PROPOSER and c.id not in proposed and not c.error for c in calls
        ),
    }


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "calls": usage.calls,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "tokens": usage.tokens,
        "dollars": round(usage.dollars, 6),
        "unpriced_calls": usage.unpriced_calls,
    }


def call_dict(call: LLMCall) -> dict[str, Any]:
    data = asdict(call)
    data["usage"] = usage_dict(call.usage)
    return data


def lineage_of(store: Store, trial: Trial) -> list[int]:
    """Trial numbers from the baseline down to `trial` (one query)."""
    return [t.number for t in store.ancestors(trial.campaign_id, trial.number)] + [trial.number]


def calls_behind(store: Store, trial: Trial, idea: Idea) -> list[LLMCall]:
    """Every LLM call behind the trial, oldest first: the proposal, implementation attempts (revisions
    included) and the analyst's note."""
    calls = store.list_llm_calls(trial.campaign_id, idea_id=idea.id) + store.list_llm_calls(
        trial.campaign_id, trial_id=trial.id
    )
    if idea.llm_call_id is not None:
        calls.append(store.get_llm_call(idea.llm_call_id))
    return sorted(calls, key=lambda c: c.id)


def trial_report(store: Store, trial: Trial) -> dict[str, Any]:
    """The trial with its idea, every patch attempt and every LLM call behind it."""
    idea = store.get_idea(trial.idea_id)
    return {
        "campaign": store.get_campaign(trial.campaign_id).name,
        "trial": trial_dict(trial),
        "idea": asdict(idea),
        "patches": [asdict(p) for p in store.list_patches(trial.id)],
        "llm_calls": [call_dict(c) for c in calls_behind(store, trial, idea)],
        "lineage": lineage_of(store, trial),
    }
