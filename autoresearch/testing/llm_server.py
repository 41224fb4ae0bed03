"""A stand-in LLM server: the OpenAI chat-completions and Anthropic messages APIs over real HTTP on 127.0.0.1.

Tests and demos point the official SDKs at it, so streaming, retries, timeouts and prompt caching go
through the same bytes a provider sends, with no network and no key. What it answers comes from a
responder: a `Script` of replies in order, or any function of the call (to answer from the prompt).

    with StandInServer(Script([Reply(status=429, retry_after="1"), Reply("Try a cosine schedule.")])) as server:
        settings = Settings(openai_base_url=server.openai_base_url, openai_api_key="sk-test", ...)
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

Provider = Literal["openai", "anthropic"]

# Anthropic API versions from this one on refuse sampling parameters; the stand-in does too, so a client
# that still sends them fails here as it would there.
_ANTHROPIC_NO_SAMPLING_FROM = "2026-10-21"


@dataclass(frozen=True)
class Reply:
    """One answer. Token counts left as None are estimated (about 4 characters a token)."""

    text: str = ""
    status: int = 200
    error: str = ""  # message of a non-200 reply, sent in the provider's error JSON
    delay_s: float = 0.0  # wait before the first byte (past the client's timeout: it times out)
    stall_s: float = 0.0  # streams: wait after the first event (past the timeout: a stream dies mid-way)
    retry_after: str | None = None  # `retry-after` header value
    input_tokens: int | None = None  # all prompt tokens, cached ones included
    output_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens read from the cache; default: the stand-in's own cache
    cache_write_tokens: int | None = None  # Anthropic only; default: the stand-in's own cache


@dataclass(frozen=True)
class StandInCall:
    """What a responder sees: the request in provider-neutral terms, and its raw JSON body."""

    provider: Provider
    model: str
    system: str
    messages: tuple[tuple[str, str], ...]  # (role, text), system prompt excluded
    body: Mapping[str, Any]  # JSON as sent

    @property
    def last_text(self) -> str:
        return self.messages[-1][1] if self.messages else ""


@dataclass(frozen=True)
class RecordedRequest:
    provider: Provider | None  # None: a path neither API has
    path: str
    headers: Mapping[str, str]  # names lower-cased
    body: Mapping[str, Any]
    api_key: str | None  # as sent (Authorization: Bearer or x-api-key)


Responder = Callable[[StandInCall], Reply]


class ScriptExhausted(Exception):
    """The script was asked for more replies than it holds."""


class Script:
    """Replays its replies in order, one per request; a string is `Reply(text=...)`."""

    def __init__(self, replies: Iterable[Reply | str]) -> None:
        self._replies = [Reply(text=r) if isinstance(r, str) else r for r in replies]
        self._served = 0
        self._lock = threading.Lock()

    def add(self, *replies: Reply | str) -> None:
        """Queue more replies after those already there."""
        with self._lock:
            self._replies += [Reply(text=r) if isinstance(r, str) else r for r in replies]

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._replies) - self._served

    def __call__(self, call: StandInCall) -> Reply:
        with self._lock:
            if self._served >= len(self._replies):
                raise ScriptExhausted(f"the script ran out of replies after {len(self._replies)} calls")
            reply = self._replies[self._served]
            self._served += 1
            return reply


class StandInServer:
    """The stand-in on an ephemeral port, served from a background thread until `close()`."""

    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self._requests: list[RecordedRequest] = []
        self._cached_prefixes: set[str] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._http = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._http.stand_in = self
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        # A short poll so close() returns at once (the default half second adds up over a test suite).
        self._thread = threading.Thread(
            target=self._http.serve_forever, args=(0.02,), name="llm-stand-in", daemon=True
        )
        self._thread.start()

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url  # the Anthropic SDK adds /v1/messages itself

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    def close(self) -> None:
        self._closing.set()  # wakes replies sleeping in delay_s / stall_s
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # One request -------------------------------------------------------------------------------

    def _answer(self, handler: _Handler) -> None:
        path = handler.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in handler.headers.items()}
        raw = handler.rfile.read(int(headers.get("content-length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        provider: Provider | None = None
        if path.endswith("/chat/completions"):
            provider = "openai"
        elif path.endswith("/messages"):
            provider = "anthropic"
        api_key = _sent_key(headers, provider)
        with self._lock:
            self._requests.append(RecordedRequest(provider, path, headers, body, api_key))

        if provider is None:
            _send_error(handler, "openai", 404, f"no such endpoint: POST {path}")
            return
        if not api_key:
            _send_error(handler, provider, 401, "no API key was sent")
            return
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            _send_error(handler, provider, 400, "the body must be a JSON object with a model")
            return
        sampling = sorted({"temperature", "top_p", "top_k"} & body.keys())
        if (
            provider == "anthropic"
            and sampling
            and headers.get("anthropic-version", "") >= _ANTHROPIC_NO_SAMPLING_FROM
        ):
            _send_error(handler, provider, 400, f"{sampling[0]}: Extra inputs are not permitted")
            return

        call = _call(provider, body)
        try:
            reply = self._responder(call)
        except Exception as exc:
            _send_error(handler, provider, 500, f"stand-in responder failed: {type(exc).__name__}: {exc}")
            return
        if reply.delay_s and self._closing.wait(reply.delay_s):
            handler.close_connection = True  # closing: no answer at all
            return
        if reply.status != 200:
            _send_error(handler, provider, reply.status, reply.error, reply.retry_after)
            return

        usage = self._usage(provider, body, reply)
        events = (
            _openai_events(call, reply, usage)
            if provider == "openai"
            else _anthropic_events(call, reply, usage)
        )
        if body.get("stream"):
            self._send_stream(handler, events, reply.stall_s)
        else:
            whole = (
                _openai_whole(call, reply, usage)
                if provider == "openai"
                else _anthropic_whole(call, reply, usage)
            )
            _send_json(handler, 200, whole)

    def _send_stream(self, handler: _Handler, events: Iterator[bytes], stall_s: float) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for number, event in enumerate(events):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            handler.wfile.flush()
            if number == 0 and stall_s and self._closing.wait(stall_s):
                handler.close_connection = True  # closing: the stream stays cut short
                return
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()

    def _usage(self, provider: Provider, body: Mapping[str, Any], reply: Reply) -> _Usage:
        units = _prompt_units(provider, body)
        model = str(body["model"])
        total = sum(len(text) for text, _ in units) // 4 + 1
        if provider == "openai":
            # OpenAI caches any repeated prefix on its own: count the longest one seen before.
            prefixes = [_prefix_key(model, units[:i]) for i in range(1, len(units))]
            lengths = [sum(len(text) for text, _ in units[:i]) for i in range(1, len(units))]
        else:
            # Anthropic caches only up to the breakpoints the request marks.
            ends = [i + 1 for i, (_, breakpoint) in enumerate(units) if breakpoint]
            prefixes = [_prefix_key(model, units[:end]) for end in ends]
            lengths = [sum(len(text) for text, _ in units[:end]) for end in ends]
        with self._lock:
            read = max(
                (n // 4 for key, n in zip(prefixes, lengths, strict=True) if key in self._cached_prefixes),
                default=0,
            )
            write = 0
            if provider == "anthropic" and prefixes and prefixes[-1] not in self._cached_prefixes:
                write = lengths[-1] // 4 - read
            self._cached_prefixes.update(prefixes)
        input_tokens = reply.input_tokens if reply.input_tokens is not None else total
        cached = reply.cached_tokens if reply.cached_tokens is not None else read
        written = reply.cache_write_tokens if reply.cache_write_tokens is not None else write
        output = reply.output_tokens if reply.output_tokens is not None else len(reply.text) // 4 + 1
        return _Usage(input_tokens, cached, written if provider == "anthropic" else 0, output)


@dataclass(frozen=True)
class _Usage:
    input: int  # all prompt tokens
    cached: int
    cache_write: int
    output: int

    @property
    def uncached(self) -> int:
        return max(0, self.input - self.cached - self.cache_write)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    stand_in: StandInServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up mid-reply is expected here, not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as the SDKs meet them in production
    server: _HTTPServer

    def do_POST(self) -> None:
        try:
            self.server.stand_in._answer(self)
        except OSError:  # the client gave up (its timeout) while the reply slept
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read server.requests, not a log


def _sent_key(headers: Mapping[str, str], provider: Provider | None) -> str | None:
    bearer = headers.get("authorization", "")
    bearer_key = bearer[len("Bearer ") :] if bearer.startswith("Bearer ") else None
    if provider == "anthropic" and headers.get("x-api-key"):
        return headers["x-api-key"]  # the API prefers it when both are sent
    return bearer_key or None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _call(provider: Provider, body: Mapping[str, Any]) -> StandInCall:
    messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
    if provider == "openai":
        system = "\n".join(
            _text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
        )
        turns = [m for m in messages if m.get("role") not in ("system", "developer")]
    else:
        system = _text_of(body.get("system", ""))
        turns = messages
    return StandInCall(
        provider=provider,
        model=str(body["model"]),
        system=system,
        messages=tuple((str(m.get("role", "")), _text_of(m.get("content"))) for m in turns),
        body=body,
    )


def _prompt_units(provider: Provider, body: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """The prompt as (text, ends a cache breakpoint) pieces, system first."""
    units: list[tuple[str, bool]] = []
    if provider == "anthropic":
        system = body.get("system", "")
        blocks = system if isinstance(system, list) else [{"text": system}] if system else []
        units += [(_text_of([b]), bool(b.get("cache_control"))) for b in blocks if isinstance(b, dict)]
    for message in body.get("messages", []):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        role = str(message.get("role", ""))
        if isinstance(content, list):
            units += [
                (role + _text_of([b]), bool(b.get("cache_control"))) for b in content if isinstance(b, dict)
            ]
        else:
            units.append((role + _text_of(content), False))
    return units


def _prefix_key(model: str, units: list[tuple[str, bool]]) -> str:
    digest = hashlib.sha256(model.encode())
    for text, _ in units:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()


def _pieces(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


# OpenAI wire format ------------------------------------------------------------------------------


def _openai_usage(usage: _Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _openai_whole(call: StandInCall, reply: Reply, usage: _Usage) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _openai_usage(usage),
    }


def _openai_events(call: StandInCall, reply: Reply, usage: _Usage) -> Iterator[bytes]:
    head: dict[str, Any] = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk"}
    head |= {"created": int(time.time()), "model": call.model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: %s\n\n" % json.dumps({**head, "choices": [choice]}).encode()

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(reply.text):
        yield chunk({"content": piece})
    yield chunk({}, "stop")
    options = call.body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        yield b"data: %s\n\n" % json.dumps({**head, "choices": [], "usage": _openai_usage(usage)}).encode()
    yield b"data: [DONE]\n\n"


# Anthropic wire format ---------------------------------------------------------------------------


def _anthropic_usage(usage: _Usage, output: int) -> dict[str, Any]:
    return {
        "input_tokens": usage.uncached,
        "cache_read_input_tokens": usage.cached,
        "cache_creation_input_tokens": usage.cache_write,
        "output_tokens": output,
    }


def _anthropic_message(
    call: StandInCall, content: list[dict[str, Any]], stop: str | None, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def _anthropic_whole(call: StandInCall, reply: Reply, usage: _Usage) -> dict[str, Any]:
    content = [{"type": "text", "text": reply.text}]
    return _anthropic_message(call, content, "end_turn", _anthropic_usage(usage, usage.output))


def _anthropic_events(call: StandInCall, reply: Reply, usage: _Usage) -> Iterator[bytes]:
    def event(kind: str, data: dict[str, Any]) -> bytes:
        return b"event: %s\ndata: %s\n\n" % (kind.encode(), json.dumps({"type": kind, **data}).encode())

    yield event("message_start", {"message": _anthropic_message(call, [], None, _anthropic_usage(usage, 1))})
    yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    yield event("ping", {})
    for piece in _pieces(reply.text):
        yield event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
    yield event("content_block_stop", {"index": 0})
    delta = {"stop_reason": "end_turn", "stop_sequence": None}
    yield event("message_delta", {"delta": delta, "usage": {"output_tokens": usage.output}})
    yield event("message_stop", {})


# Errors --------------------------------------------------------------------------------------------

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _send_error(
    handler: _Handler, provider: Provider, status: int, message: str, retry_after: str | None = None
) -> None:
    message = message or f"stand-in reply with status {status}"
    body: dict[str, Any]
    if provider == "anthropic":
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        kind, code = "invalid_request_error", None
        if status == 401:
            code = "invalid_api_key"
        elif status == 429:
            kind, code = "requests", "rate_limit_exceeded"
        elif status >= 500:
            kind = "server_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    _send_json(handler, status, body, {"retry-after": retry_after} if retry_after is not None else {})


def _send_json(
    handler: _Handler, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> None:
    data = json.dumps(body).encode()
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Overloaded" if status == 529 else ""
    handler.send_response(status, phrase)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)
    handler.wfile.flush()
