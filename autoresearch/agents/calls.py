"""Every LLM call of a campaign goes through `Agents.ask`: budget check, the call, its record, its cost."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from autoresearch.adapters.llm.base import Completion, LLMClient, LLMError, LLMRequest
from autoresearch.agents.config import AgentsConfig
from autoresearch.domain.model import LLMCall, Role, Usage
from autoresearch.services.proposer import ProposerStopped
from autoresearch.services.store import Store
from autoresearch.settings import Price


class BudgetSpent(ProposerStopped):
    """A token or dollar budget of the campaign or of a role is used up: no more calls for it."""


@dataclass(frozen=True)
class Answer:
    text: str
    call: LLMCall


def price_of(model: str, prices: Mapping[str, Price]) -> Price | None:
    """The model's price: an exact entry, else the longest entry the model's name starts with
    (claude-sonnet-4-5-20250929 is priced as claude-sonnet-4-5); None when there is none."""
    if model in prices:
        return prices[model]
    prefixes = [name for name in prices if model.startswith(name)]
    return prices[max(prefixes, key=len)] if prefixes else None


def dollars_for(completion: Completion, price: Price | None) -> float | None:
    if price is None:
        return None
    cached = completion.cached_tokens
    written = completion.cache_write_tokens
    fresh = max(0, completion.input_tokens - cached - written)
    cached_price = price.input if price.cached_input is None else price.cached_input
    write_price = price.input if price.cache_write is None else price.cache_write
    total = fresh * price.input + cached * cached_price + written * write_price
    return (total + completion.output_tokens * price.output) / 1e6


class Agents:
    """The models of one campaign's roles, with the campaign's budgets and its record of calls."""

    def __init__(
        self,
        store: Store,
        campaign_id: int,
        config: AgentsConfig,
        clients: Mapping[Role, LLMClient],
        prices: Mapping[str, Price],
    ) -> None:
        self.store = store
        self.campaign_id = campaign_id
        self.config = config
        self.clients = dict(clients)
        self.prices = prices

    def has(self, role: Role) -> bool:
        return role in self.clients

    def spent(self, role: Role) -> str | None:
        """Why `role` may make no more calls (its budget or the campaign's is used up), or None. Budgets and
        spending are read from the store, so a raised budget and other processes' calls count at once."""
        # The budgets as stored now: a person may have raised them while the campaign runs.
        self.config = AgentsConfig.of(self.store.get_campaign(self.campaign_id).agents) or self.config
        usage = self.store.llm_usage(self.campaign_id)
        campaign = self.config.budget.spent_by(sum(usage.values(), Usage()))
        if campaign is not None:
            return f"the campaign's LLM budget is used up ({campaign})"
        budget = self.config.role_budgets.get(role)
        mine = budget.spent_by(usage.get(role, Usage())) if budget else None
        return f"the {role}'s LLM budget is used up ({mine})" if mine else None

    def ask(
        self,
        role: Role,
        template: str,
        request: LLMRequest,
        *,
        idea_id: int | None = None,
        trial_id: int | None = None,
        surface: str = "",
    ) -> Answer:
        """Call the role's model and record the call. BudgetSpent before any call a budget forbids;
        LLMError (recorded too) when the provider fails after its retries."""
        why = self.spent(role)
        if why is not None:
            raise BudgetSpent(why)
        client = self.clients[role]
        prompt = {
            "system": request.system,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        spec = f"{client.provider}:{client.model}"
        started = time.monotonic()
        try:
            completion = client.complete(request)
        except LLMError as exc:
            self.store.add_llm_call(
                self.campaign_id,
                role=role,
                model=spec,
                template=template,
                prompt=prompt,
                response="",
                error=str(exc),
                duration_s=time.monotonic() - started,
                idea_id=idea_id,
                trial_id=trial_id,
                surface=surface,
            )
            raise
        dollars = dollars_for(completion, price_of(client.model, self.prices))
        call = self.store.add_llm_call(
            self.campaign_id,
            role=role,
            model=spec,
            template=template,
            prompt=prompt,
            response=completion.text,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            cached_tokens=completion.cached_tokens,
            dollars=dollars,
            attempts=completion.attempts,
            duration_s=time.monotonic() - started,
            idea_id=idea_id,
            trial_id=trial_id,
            surface=surface,
        )
        return Answer(completion.text, call)

    def reject(self, call: LLMCall, error: str) -> None:
        """Mark an answer that came back but could not be used; its tokens still count."""
        self.store.reject_llm_call(call.id, error)
