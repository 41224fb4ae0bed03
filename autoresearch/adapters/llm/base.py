"""What every LLM provider adapter speaks: a request, a completion with its token counts, and errors.

The agents (proposer, implementer, analyst) build requests from prompt templates and never see a
provider's SDK; the adapters never see a prompt template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

from autoresearch.errors import AutoresearchError, ConfigError

Provider = Literal["openai", "anthropic", "openai-compatible"]
ACCEPTED_FORMS = "openai:MODEL, anthropic:MODEL or openai-compatible:http(s)://HOST[:PORT]/PATH:MODEL"


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str
    cache: bool = False  # end of a stable prefix: a prompt-cache breakpoint where the provider has them


@dataclass(frozen=True)
class LLMRequest:
    system: str  # stable across calls of one role: always cached where the provider allows it
    messages: tuple[Message, ...]
    max_tokens: int = 4096
    temperature: float | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    model: str  # as the provider reported it
    input_tokens: int  # all prompt tokens, cached ones included
    output_tokens: int
    cached_tokens: int = 0  # prompt tokens read from the provider's cache
    cache_write_tokens: int = 0  # prompt tokens written to the provider's cache (Anthropic bills these)
    stop_reason: str = ""
    attempts: int = 1  # HTTP attempts it took, retries included


class LLMClient(Protocol):
    provider: str  # "openai", "anthropic" or "openai-compatible"
    model: str

    def complete(self, request: LLMRequest) -> Completion:
        """One completion; retries 429, 5xx, timeouts and dropped connections with backoff, then raises LLMError."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


class LLMError(AutoresearchError):
    """The provider did not answer after every retry, or refused the request. Never carries an API key."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable  # the last failure was transient (it may work later)


# The URL ends at the first ':' after its path starts, so a model name keeps its own colons (llama3:8b).
_URL_THEN_MODEL = re.compile(r"(https?://(?:\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+)(?::\d+)?/[^\s:]+):(\S+)")
_MODEL_NAME = re.compile(r"\S+")


@dataclass(frozen=True)
class ModelSpec:
    """Which provider and model an agent talks to, and for an OpenAI-compatible server, where."""

    provider: Provider
    model: str
    base_url: str | None = None  # only openai-compatible names its own server

    def __str__(self) -> str:
        if self.base_url is not None:
            return f"{self.provider}:{self.base_url}:{self.model}"
        return f"{self.provider}:{self.model}"


def parse_model_spec(text: str) -> ModelSpec:
    """`openai:gpt-5`, `anthropic:claude-sonnet-4-5` or `openai-compatible:http://127.0.0.1:8000/v1:qwen`."""
    provider, _, rest = text.strip().partition(":")
    if provider in ("openai", "anthropic") and _MODEL_NAME.fullmatch(rest):
        return ModelSpec(provider="openai" if provider == "openai" else "anthropic", model=rest)
    if provider == "openai-compatible" and (found := _URL_THEN_MODEL.fullmatch(rest)):
        return ModelSpec(provider="openai-compatible", model=found[2], base_url=found[1])
    raise ConfigError(
        f"model {text!r} is not one of {ACCEPTED_FORMS} (e.g. openai-compatible:http://127.0.0.1:8000/v1:qwen)"
    )
