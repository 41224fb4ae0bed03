"""What every LLM provider adapter speaks: a request, a completion with its token counts, and errors.

The agents (proposer, implementer, analyst) build requests from prompt templates and never see a
provider's SDK; the adapters never see a prompt template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from autoresearch.errors import AutoresearchError


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


class LLMError(AutoresearchError):
    """The provider did not answer after every retry, or refused the request. Never carries an API key."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable  # the last failure was transient (it may work later)
