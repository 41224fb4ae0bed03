"""The diff between two trials' code, which the JSON API does not serve.

A trial's code is its environment's baseline plus the trial's diff against the baseline
(`Trial.code_diff`), so any two trials of a campaign compare exactly once both are rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoresearch.domain.diffs import apply_diff, make_diff
from autoresearch.domain.model import Campaign, FailureLabel, Trial
from autoresearch.environment import discover, load_environment
from autoresearch.errors import AutoresearchError
from autoresearch.settings import Settings

# Trials whose implementation failed have no code: an empty diff means "nothing", not "the baseline".
_NO_CODE = frozenset({FailureLabel.PATCH_FAILED, FailureLabel.ILLEGAL_EDIT})


@dataclass(frozen=True)
class CodeDiff:
    text: str  # a unified diff from the old trial's code to the new one's; "" when there is none
    note: str  # why there is no diff to show, or ""


def trial_code(baseline: dict[str, str], trial: Trial) -> dict[str, str] | None:
    """The trial's code (path -> text), or None when its patch never produced any."""
    if not trial.code_diff:
        return None if trial.label in _NO_CODE else dict(baseline)
    return apply_diff(baseline, trial.code_diff)


def code_diff(settings: Settings, campaign: Campaign, old: Trial, new: Trial) -> CodeDiff:
    """How `new`'s code differs from `old`'s, rebuilt from the environment's baseline on this server."""
    found = discover(settings.environment_search_path)  # names only: never a path a request chose
    if campaign.environment not in found:
        return CodeDiff("", f"environment {campaign.environment!r} is not installed on this server")
    try:
        baseline = load_environment(found[campaign.environment]).read_editable()
        codes = (trial_code(baseline, old), trial_code(baseline, new))
    except (AutoresearchError, OSError) as exc:
        return CodeDiff("", f"the trials' code could not be rebuilt from the baseline: {exc}")
    for trial, code in zip((old, new), codes, strict=True):
        if code is None:
            return CodeDiff(
                "", f"trial {trial.number} has no code: its patch was never applied ({trial.label})"
            )
    old_code, new_code = codes
    assert old_code is not None and new_code is not None
    text = make_diff(old_code, new_code)
    return CodeDiff(text, "" if text else f"trials {old.number} and {new.number} run the same code")
