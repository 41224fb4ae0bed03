"""The OpenAI, OpenAI-compatible and Anthropic clients behind `LLMClient`, and the model spec that picks one.

Retries are ours, not the SDKs' (they are built with `max_retries=0`): one loop and one policy for every
provider, an attempt count that means HTTP attempts, and a stream that dies half-way is retried like any
dropped call, which the SDKs' own retries never do.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import anthropic
import httpx2
import openai
from anthropic.types import (
    AssistantMessageParam,
    MessageContentParam,
    MessageParam,
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextBlockParam,
    UserMessageParam,
)
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionMessageParam
from pydantic import SecretStr

from autoresearch.adapters.llm.base import Completion, LLMClient, LLMError, LLMRequest, ModelSpec
from autoresearch.adapters.llm.servers import check_server
from autoresearch.errors import ConfigError
from autoresearch.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0  # also the cap on a server's retry-after: a longer wait is better spent failing loudly
OPENAI_COMPATIBLE_PLACEHOLDER_KEY = "not-needed"  # vLLM, ollama & co. ignore the key; the SDK insists on one


def make_client(spec: ModelSpec, settings: Settings, *, local_run: bool = False) -> LLMClient:
    """A client for `spec` with the key, base URL, timeout and retry policy from `settings`.

    An OpenAI-compatible spec names its own server: it must be one AUTORESEARCH_LLM_BASE_URLS lists, unless
    `local_run` (a campaign `autoresearch run` drives in this process) and the list is empty; see
    `servers`. Checked here, where the key would be handed over, so that no caller can skip it.
    """
    if spec.provider == "anthropic":
        return AnthropicClient(
            spec,
            api_key=_required_key(settings.anthropic_api_key, "ANTHROPIC_API_KEY", spec),
            base_url=settings.anthropic_base_url,
            settings=settings,
        )
    if spec.provider == "openai":
        return OpenAIClient(
            spec,
            api_key=_required_key(settings.openai_api_key, "OPENAI_API_KEY", spec),
            base_url=settings.openai_base_url,
            settings=settings,
        )
    check_server(spec, settings.llm_base_urls, local_run=local_run)
    key = settings.openai_compatible_api_key
    return OpenAIClient(
        spec,
        api_key=key.get_secret_value() if key is not None else OPENAI_COMPATIBLE_PLACEHOLDER_KEY,
        base_url=spec.base_url,
        settings=settings,
    )


def _required_key(key: SecretStr | None, env_var: str, spec: ModelSpec) -> str:
    secret = key.get_secret_value() if key is not None else ""
    if not secret:
        raise ConfigError(f"{spec} needs an API key: set {env_var} (or AUTORESEARCH_{env_var})")
    return secret


# Retries --------------------------------------------------------------------------------------------


class _AttemptFailed(Exception):
    """One HTTP attempt failed; `detail` is already free of the key."""

    def __init__(self, detail: str, *, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RetryPolicy:
    retries: int
    backoff_s: float

    def delay_s(self, failed_attempts: int, retry_after_s: float | None) -> float:
        """How long to wait after the `failed_attempts`-th failure: the server's word, else backoff."""
        if retry_after_s is not None:
            return min(retry_after_s, MAX_BACKOFF_S)
        # Jitter keeps workers that failed together from all coming back in the same instant.
        backoff = self.backoff_s * 2.0 ** (failed_attempts - 1) * random.uniform(1.0, 1.1)
        return min(backoff, MAX_BACKOFF_S)

    def run(self, label: str, attempt: Callable[[], Completion]) -> Completion:
        """`attempt` until it succeeds, fails for good, or the retries run out; then an LLMError."""
        for number in range(1, self.retries + 2):
            try:
                completion = attempt()
            except _AttemptFailed as failure:
                # `from None`: the SDK error holds the request, headers and key included, and an LLMError
                # travels far (logs, task results); its message already says everything needed.
                if not failure.retryable:
                    raise LLMError(f"{label}: {failure.detail}", retryable=False) from None
                if number > self.retries:
                    message = f"{label}: {failure.detail} (gave up after {number} attempts)"
                    raise LLMError(message, retryable=True) from None
                wait = self.delay_s(number, failure.retry_after_s)
                log.warning(
                    "%s: %s; retry %d of %d in %.1f s", label, failure.detail, number, self.retries, wait
                )
                time.sleep(wait)
            else:
                return replace(completion, attempts=number)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _retry_after_s(headers: httpx2.Headers) -> float | None:
    """`retry-after-ms`, or `retry-after` as seconds or an HTTP date, as both providers send them."""
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(body: object, fallback: str) -> str:
    """`error.message` from either provider's error JSON (the SDKs hand over the body or its `error`)."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    if isinstance(body, str) and body:
        return body
    return fallback


def _status_failure(status: int, headers: httpx2.Headers, server_message: str) -> _AttemptFailed:
    # Both providers send x-should-retry when they know better than the status code (a 429 for an
    # exhausted quota will not clear by waiting).
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    else:
        retryable = status in (408, 429) or status >= 500
    return _AttemptFailed(
        f"HTTP {status}: {server_message}",
        retryable=retryable,
        retry_after_s=_retry_after_s(headers) if retryable else None,
    )


def _without_key(text: str, key: str) -> str:
    # Some servers echo the key they refused ("Incorrect API key provided: sk-...").
    shown = text.replace(key, "[API key]") if len(key) >= 4 else text
    return shown if len(shown) <= 500 else shown[:500] + "..."


def _transport_failure(exc: Exception, timeout_s: float) -> _AttemptFailed:
    if isinstance(exc, httpx2.TimeoutException | openai.APITimeoutError | anthropic.APITimeoutError):
        return _AttemptFailed(f"no answer within {timeout_s:g} s (timeout)", retryable=True)
    cause = exc.__cause__ or exc
    return _AttemptFailed(f"connection failed: {type(cause).__name__}: {cause}", retryable=True)


# OpenAI and OpenAI-compatible -----------------------------------------------------------------------


class _RetryingClient:
    """What both providers' clients share: the spec, the key to keep out of messages, and the retry loop."""

    def __init__(self, spec: ModelSpec, *, api_key: str, settings: Settings) -> None:
        self.provider: str = spec.provider
        self.model = spec.model
        self._label = str(spec)
        self._key = api_key
        self._stream = settings.llm_stream
        self._timeout_s = settings.llm_timeout_s
        self._policy = RetryPolicy(settings.llm_retries, settings.llm_backoff_s)

    def complete(self, request: LLMRequest) -> Completion:
        return self._policy.run(self._label, lambda: self._attempt(request))

    def _attempt(self, request: LLMRequest) -> Completion:
        raise NotImplementedError


class OpenAIClient(_RetryingClient):
    """Chat completions on OpenAI, or on any server that speaks its API (vLLM, ollama, llama.cpp)."""

    def __init__(self, spec: ModelSpec, *, api_key: str, base_url: str | None, settings: Settings) -> None:
        super().__init__(spec, api_key=api_key, settings=settings)
        self._sdk = openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=settings.llm_timeout_s, max_retries=0
        )

    def close(self) -> None:
        self._sdk.close()

    def _attempt(self, request: LLMRequest) -> Completion:
        try:
            return self._streamed(request) if self._stream else self._whole(request)
        except openai.APIStatusError as exc:
            message = _without_key(_server_message(exc.body, exc.message), self._key)
            raise _status_failure(exc.status_code, exc.response.headers, message) from exc
        except (openai.APIConnectionError, httpx2.TransportError) as exc:
            raise _transport_failure(exc, self._timeout_s) from exc
        except openai.APIResponseValidationError as exc:
            raise _AttemptFailed(f"unexpected response: {exc.message}", retryable=False) from exc
        except openai.APIError as exc:
            # An error event inside a 200 stream: the server failed while generating.
            message = _without_key(_server_message(exc.body, exc.message), self._key)
            raise _AttemptFailed(f"error mid-stream: {message}", retryable=True) from exc

    def _messages(self, request: LLMRequest) -> list[ChatCompletionMessageParam]:
        # Message.cache needs nothing here: OpenAI caches repeated prompt prefixes on its own.
        messages: list[ChatCompletionMessageParam] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        for message in request.messages:
            if message.role == "user":
                messages.append({"role": "user", "content": message.content})
            else:
                messages.append({"role": "assistant", "content": message.content})
        return messages

    def _limit(self, request: LLMRequest) -> dict[str, int]:
        # OpenAI's reasoning models refuse `max_tokens`; compatible servers do not all know its successor.
        name = "max_completion_tokens" if self.provider == "openai" else "max_tokens"
        return {name: request.max_tokens}

    def _whole(self, request: LLMRequest) -> Completion:
        response = self._sdk.chat.completions.create(
            model=self.model,
            messages=self._messages(request),
            temperature=openai.omit if request.temperature is None else request.temperature,
            extra_body=self._limit(request),
        )
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice is not None else ""
        stop = (choice.finish_reason or "") if choice is not None else ""
        return _openai_completion(text, response.model or self.model, stop, response.usage)

    def _streamed(self, request: LLMRequest) -> Completion:
        parts: list[str] = []
        model = self.model
        stop = ""
        usage: CompletionUsage | None = None
        with self._sdk.chat.completions.create(
            model=self.model,
            messages=self._messages(request),
            temperature=openai.omit if request.temperature is None else request.temperature,
            extra_body=self._limit(request),
            stream=True,
            stream_options={"include_usage": True},
        ) as stream:
            for chunk in stream:
                model = chunk.model or model
                usage = chunk.usage or usage  # only the last chunk carries it
                for choice in chunk.choices:
                    if choice.index == 0 and choice.delta.content:
                        parts.append(choice.delta.content)
                    if choice.index == 0 and choice.finish_reason:
                        stop = choice.finish_reason
        if not stop:
            raise _AttemptFailed("the stream ended before the completion did", retryable=True)
        return _openai_completion("".join(parts), model, stop, usage)


def _openai_completion(text: str, model: str, stop: str, usage: CompletionUsage | None) -> Completion:
    # A compatible server may send no usage at all; zero is honest, a guess would skew the budget.
    details = usage.prompt_tokens_details if usage is not None else None
    return Completion(
        text=text,
        model=model,
        input_tokens=usage.prompt_tokens if usage is not None else 0,
        output_tokens=usage.completion_tokens if usage is not None else 0,
        cached_tokens=(details.cached_tokens or 0) if details is not None else 0,
        cache_write_tokens=(details.cache_write_tokens or 0) if details is not None else 0,
        stop_reason=stop,
    )


# Anthropic ------------------------------------------------------------------------------------------


@dataclass
class _AnthropicUsage:
    uncached_input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0


class AnthropicClient(_RetryingClient):
    """Claude through the Messages API; the system prompt and flagged messages are cache breakpoints.

    `LLMRequest.temperature` is not sent: API version 2026-10-21, which this SDK speaks, refuses
    temperature, top_p and top_k outright (HTTP 400, even at 1.0), and the SDK no longer has them.
    """

    def __init__(self, spec: ModelSpec, *, api_key: str, base_url: str | None, settings: Settings) -> None:
        super().__init__(spec, api_key=api_key, settings=settings)
        self._sdk = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, timeout=settings.llm_timeout_s, max_retries=0
        )

    def close(self) -> None:
        self._sdk.close()

    def _attempt(self, request: LLMRequest) -> Completion:
        try:
            return self._streamed(request) if self._stream else self._whole(request)
        except anthropic.APIStatusError as exc:
            message = _without_key(_server_message(exc.body, exc.message), self._key)
            if exc.status_code < 400:
                # An `error` event inside a 200 stream (overloaded_error, api_error): failed while generating.
                raise _AttemptFailed(f"error mid-stream: {message}", retryable=True) from exc
            raise _status_failure(exc.status_code, exc.response.headers, message) from exc
        except (anthropic.APIConnectionError, httpx2.TransportError) as exc:
            # The SDK does not wrap a transport error raised while a stream is read: hence httpx2 too.
            raise _transport_failure(exc, self._timeout_s) from exc
        except anthropic.APIResponseValidationError as exc:
            raise _AttemptFailed(f"unexpected response: {exc.message}", retryable=False) from exc

    def _system(self, request: LLMRequest) -> list[TextBlockParam]:
        if not request.system:  # the API refuses an empty text block
            return []
        return [{"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}]

    def _messages(self, request: LLMRequest) -> list[MessageParam]:
        messages: list[MessageParam] = []
        for message in request.messages:
            content: MessageContentParam = message.content
            if message.cache:
                content = [{"type": "text", "text": message.content, "cache_control": {"type": "ephemeral"}}]
            if message.role == "user":
                messages.append(UserMessageParam(role="user", content=content))
            else:
                messages.append(AssistantMessageParam(role="assistant", content=content))
        return messages

    def _whole(self, request: LLMRequest) -> Completion:
        response = self._sdk.messages.create(
            model=self.model,
            max_tokens=request.max_tokens,
            system=self._system(request) or anthropic.omit,
            messages=self._messages(request),
        )
        text = "".join(block.text for block in response.content if block.type == "text")
        usage = _AnthropicUsage(
            uncached_input=response.usage.input_tokens,
            cache_read=response.usage.cache_read_input_tokens or 0,
            cache_write=response.usage.cache_creation_input_tokens or 0,
            output=response.usage.output_tokens,
        )
        return _anthropic_completion(text, response.model, response.stop_reason or "", usage)

    def _streamed(self, request: LLMRequest) -> Completion:
        # The raw event stream rather than `messages.stream()`: its final-message helper asserts on a
        # stream cut short, where this needs a retryable failure.
        parts: list[str] = []
        model = self.model
        stop = ""
        finished = False
        usage = _AnthropicUsage()
        with self._sdk.messages.create(
            model=self.model,
            max_tokens=request.max_tokens,
            system=self._system(request) or anthropic.omit,
            messages=self._messages(request),
            stream=True,
        ) as stream:
            for event in stream:
                if isinstance(event, RawMessageStartEvent):
                    model = event.message.model
                    usage.uncached_input = event.message.usage.input_tokens
                    usage.cache_read = event.message.usage.cache_read_input_tokens or 0
                    usage.cache_write = event.message.usage.cache_creation_input_tokens or 0
                    usage.output = event.message.usage.output_tokens
                elif isinstance(event, RawContentBlockDeltaEvent) and event.delta.type == "text_delta":
                    parts.append(event.delta.text)
                elif isinstance(event, RawMessageDeltaEvent):
                    stop = event.delta.stop_reason or stop
                    # Counts here are running totals; absent ones keep message_start's value.
                    usage.output = event.usage.output_tokens
                    if event.usage.input_tokens is not None:
                        usage.uncached_input = event.usage.input_tokens
                    if event.usage.cache_read_input_tokens is not None:
                        usage.cache_read = event.usage.cache_read_input_tokens
                    if event.usage.cache_creation_input_tokens is not None:
                        usage.cache_write = event.usage.cache_creation_input_tokens
                elif isinstance(event, RawMessageStopEvent):
                    finished = True
        if not finished:
            raise _AttemptFailed("the stream ended before the message did", retryable=True)
        return _anthropic_completion("".join(parts), model, stop, usage)


def _anthropic_completion(text: str, model: str, stop: str, usage: _AnthropicUsage) -> Completion:
    return Completion(
        text=text,
        model=model,
        # Anthropic's input_tokens leaves out what was read from or written to the cache.
        input_tokens=usage.uncached_input + usage.cache_read + usage.cache_write,
        output_tokens=usage.output,
        cached_tokens=usage.cache_read,
        cache_write_tokens=usage.cache_write,
        stop_reason=stop,
    )
