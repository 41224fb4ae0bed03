"""Assemble a campaign's agents from its stored config: clients per role, proposer, implementer,
analyst and novelty gate. `stand-in` models start the offline stand-in server for the campaign."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from pydantic import SecretStr

from autoresearch.adapters.llm.base import LLMClient, ModelSpec, parse_model_spec
from autoresearch.agents.analyst import LLMAnalyst
from autoresearch.agents.calls import Agents
from autoresearch.agents.config import STAND_IN, AgentsConfig
from autoresearch.agents.implementer import LLMImplementer
from autoresearch.agents.novelty import EmbeddingNoveltyGate, MiniLMEmbedder
from autoresearch.agents.proposer import LLMProposer
from autoresearch.domain.model import Campaign, Role
from autoresearch.environment import Environment
from autoresearch.errors import ConfigError
from autoresearch.services.implementer import Preflight
from autoresearch.services.runner import TrialRunner
from autoresearch.services.store import Store
from autoresearch.settings import Settings

STAND_IN_MODEL = "stand-in"
SMOKE_PRESET = "smoke"


def check_clients(config: AgentsConfig, settings: Settings, *, local_run: bool) -> None:
    """Build each role's client once, so a missing API key or a server AUTORESEARCH_LLM_BASE_URLS does not
    allow is reported before a campaign is created. `local_run`: `autoresearch run` will drive the campaign
    in its own process (not the cluster); see `adapters.llm.servers`."""
    from autoresearch.adapters.llm.providers import make_client  # the SDKs: seconds to import

    for role in Role:
        text = config.model_of(role)
        if text is not None and not text.startswith(STAND_IN):
            try:
                make_client(parse_model_spec(text), settings, local_run=local_run).close()
            except ConfigError as exc:
                raise ConfigError(f"{role}: {exc}") from None


@dataclass(frozen=True)
class CampaignAgents:
    agents: Agents
    proposer: LLMProposer
    implementer: LLMImplementer
    analyst: LLMAnalyst | None
    novelty: EmbeddingNoveltyGate


def preflight_preset(env: Environment, preset: str) -> str | None:
    """The preset a preflight runs: `smoke` when the environment has one and the campaign runs another
    (on the smoke preset itself, the trial is as cheap as its preflight would be)."""
    return SMOKE_PRESET if SMOKE_PRESET in env.spec.presets and preset != SMOKE_PRESET else None


@contextmanager
def open_agents(
    store: Store,
    campaign: Campaign,
    env: Environment,
    settings: Settings,
    smoke_runner: TrialRunner | None,
    cancel: threading.Event,
) -> Iterator[CampaignAgents | None]:
    """The campaign's agents while the context lasts; None for a campaign without LLM agents."""
    config = AgentsConfig.of(campaign.agents)
    if config is None:
        yield None
        return
    with ExitStack() as stack:
        clients: dict[Role, LLMClient] = {}
        made: dict[str, LLMClient] = {}
        for role in Role:
            text = config.model_of(role)
            if text is None:
                continue
            if text not in made:
                # The campaign decides, not this process: a cluster campaign resumed here is checked the same.
                made[text] = _client(text, env, settings, stack, local_run=not campaign.distributed)
                stack.callback(made[text].close)
            clients[role] = made[text]
        agents = Agents(store, campaign.id, config, clients, settings.prices)
        preflight = Preflight(smoke_runner if config.preflight else None, cancel)
        baseline = env.read_editable()
        yield CampaignAgents(
            agents=agents,
            proposer=LLMProposer(agents, env, campaign.preset, campaign.goal),
            implementer=LLMImplementer(agents, env, campaign.preset, campaign.goal, baseline, preflight),
            analyst=LLMAnalyst(agents, env, campaign.preset, campaign.goal)
            if agents.has(Role.ANALYST)
            else None,
            novelty=EmbeddingNoveltyGate(MiniLMEmbedder(), settings.novelty_threshold),
        )


def _client(
    text: str, env: Environment, settings: Settings, stack: ExitStack, *, local_run: bool
) -> LLMClient:
    from autoresearch.adapters.llm.providers import make_client  # the SDKs: seconds to import

    if not text.startswith(STAND_IN):
        return make_client(parse_model_spec(text), settings, local_run=local_run)
    from autoresearch.testing.llm_server import StandInServer
    from autoresearch.testing.stand_in_brain import CatalogBrain

    server = stack.enter_context(StandInServer(CatalogBrain(env)))
    if text.endswith(":anthropic"):
        local = settings.model_copy(
            update={"anthropic_base_url": server.anthropic_base_url, "anthropic_api_key": SecretStr(STAND_IN)}
        )
        return make_client(ModelSpec("anthropic", STAND_IN_MODEL), local)
    # The stand-in listens on loopback in this process: the one server this client may talk to.
    own = settings.model_copy(update={"llm_base_urls": server.openai_base_url})
    return make_client(ModelSpec("openai-compatible", STAND_IN_MODEL, server.openai_base_url), own)
