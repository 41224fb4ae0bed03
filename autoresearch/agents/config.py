"""A campaign's agent settings, stored with the campaign so that `resume` uses the same models and limits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError

from autoresearch.adapters.llm.base import parse_model_spec
from autoresearch.domain.model import Role, Usage
from autoresearch.environment import StrictModel
from autoresearch.errors import ConfigError, describe_invalid


class Budget(StrictModel):
    """Limits on what LLM calls may spend; None is no limit."""

    tokens: int | None = Field(default=None, gt=0)
    dollars: float | None = Field(default=None, gt=0)

    def spent_by(self, usage: Usage) -> str | None:
        """Why `usage` has reached this budget, or None while there is room."""
        if self.dollars is not None and usage.dollars >= self.dollars:
            return f"${usage.dollars:.4f} of ${self.dollars:g} spent"
        if self.tokens is not None and usage.tokens >= self.tokens:
            return f"{usage.tokens:,} of {self.tokens:,} tokens spent"
        return None


class AgentsConfig(StrictModel):
    """Which model plays each role (a model spec such as anthropic:claude-sonnet-4-5), and the limits."""

    proposer: str
    implementer: str
    analyst: str | None = None  # None: no analyst notes
    ideas_per_call: int = Field(default=4, ge=1, le=16)
    revisions: int = Field(default=2, ge=0, le=5)  # re-prompts after a patch fails to apply or preflight
    preflight: bool = True  # a syntax check and a few smoke-preset steps before a patch is accepted
    budget: Budget = Field(default_factory=Budget)
    role_budgets: dict[Role, Budget] = Field(default_factory=dict)

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> AgentsConfig | None:
        """The config a campaign was created with; None for a campaign without LLM agents."""
        if not stored:
            return None
        try:
            return cls.model_validate(dict(stored))
        except ValidationError as exc:
            raise ConfigError(f"campaign agents: {describe_invalid(exc.errors()[0])}") from exc

    def with_budget(self, *, dollars: float | None, tokens: int | None) -> AgentsConfig:
        """The same config with the campaign's budget changed where a limit is given."""
        changes = {k: v for k, v in (("dollars", dollars), ("tokens", tokens)) if v is not None}
        try:
            budget = Budget.model_validate(self.budget.model_dump() | changes)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(describe_invalid(first, f"--max-{first['loc'][0]}")) from exc
        return self.model_copy(update={"budget": budget})

    def model_of(self, role: Role) -> str | None:
        return {Role.PROPOSER: self.proposer, Role.IMPLEMENTER: self.implementer, Role.ANALYST: self.analyst}[
            role
        ]


CATALOG = "catalog"  # the offline proposer: no model, no agents config
NONE = "none"
STAND_IN = "stand-in"  # `stand-in` (OpenAI SDK) or `stand-in:anthropic`: the offline stand-in server


def check_model(text: str) -> str:
    """A model as given on the command line, checked; ConfigError names the accepted forms."""
    if text not in (STAND_IN, f"{STAND_IN}:openai", f"{STAND_IN}:anthropic"):
        parse_model_spec(text)
    return text


def agents_config(
    proposer: str,
    *,
    implementer: str | None = None,
    analyst: str | None = None,
    ideas_per_call: int = 4,
    revisions: int = 2,
    preflight: bool = True,
    max_dollars: float | None = None,
    max_tokens: int | None = None,
    role_budgets: list[str] | None = None,
) -> AgentsConfig | None:
    """The config the `run` options describe; None for a catalog campaign. ConfigError on bad options."""
    if proposer == CATALOG:
        given = [
            flag
            for flag, value in (
                ("--implementer", implementer),
                ("--analyst", analyst),
                ("--max-dollars", max_dollars),
                ("--max-tokens", max_tokens),
                ("--role-budget", role_budgets),
            )
            if value
        ]
        if given:
            raise ConfigError(
                f"{', '.join(given)} need an LLM proposer (--proposer MODEL): the catalog writes its own patches"
            )
        return None
    roles: dict[Role, Budget] = {}
    for text in role_budgets or []:
        role, budget = _role_budget(text)
        roles[role] = Budget.model_validate(roles.get(role, Budget()).model_dump() | budget)
    data = {
        "proposer": check_model(proposer),
        "implementer": check_model(implementer or proposer),
        "analyst": None if analyst == NONE else check_model(analyst or proposer),
        "ideas_per_call": ideas_per_call,
        "revisions": revisions,
        "preflight": preflight,
        "budget": {"dollars": max_dollars, "tokens": max_tokens},
        "role_budgets": roles,
    }
    try:
        return AgentsConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = "--" + "-".join(str(p) for p in first["loc"]).replace("_", "-")
        raise ConfigError(describe_invalid(first, option)) from exc


def _role_budget(text: str) -> tuple[Role, dict[str, float]]:
    """ROLE:dollars=X or ROLE:tokens=N."""
    role, _, limit = text.partition(":")
    kind, _, amount = limit.partition("=")
    roles = ", ".join(r.value for r in Role)
    if role not in {r.value for r in Role} or kind not in ("dollars", "tokens"):
        raise ConfigError(
            f"--role-budget {text!r}: write ROLE:dollars=X or ROLE:tokens=N, ROLE one of {roles}"
        )
    try:
        value = float(amount)
    except ValueError:
        raise ConfigError(f"--role-budget {text!r}: {amount!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"--role-budget {text!r}: the limit must be above 0")
    return Role(role), {kind: int(value) if kind == "tokens" else value}
