"""The OpenAI, OpenAI-compatible and Anthropic clients: the real SDKs over real HTTP against the stand-in server."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoresearch.adapters.llm.base import (
    LLMClient,
    LLMError,
    LLMRequest,
    Message,
    ModelSpec,
    parse_model_spec,
)
from autoresearch.adapters.llm.providers import make_client
from autoresearch.errors import ConfigError
from autoresearch.settings import Settings
from autoresearch.testing.llm_server import Reply, Script, StandInCall, StandInServer

OPENAI_KEY = "sk-test-openai-4f9c2a7e1b"
ANTHROPIC_KEY = "sk-ant-test-8d3e6b0c5a"
PROVIDERS = ["openai", "anthropic"]
STREAM = [pytest.param(True, id="stream"), pytest.param(False, id="whole")]
ASK = LLMRequest(system="You are the proposer.", messages=(Message("user", "Suggest one idea."),))


@pytest.fixture(autouse=True)
def no_ambient_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys, base URLs and proxies of the machine running the tests must not reach the SDKs."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("OPENAI_", "ANTHROPIC_", "AUTORESEARCH_")) or upper.endswith("_PROXY"):
            monkeypatch.delenv(name)


@pytest.fixture
def script() -> Script:
    """What `server` answers: each test adds its replies."""
    return Script([])


@pytest.fixture
def server(script: Script) -> Iterator[StandInServer]:
    with StandInServer(script) as stand_in:
        yield stand_in


def settings_for(tmp_path: Path, server: StandInServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "openai_api_key": OPENAI_KEY,
        "anthropic_api_key": ANTHROPIC_KEY,
        "openai_compatible_api_key": None,
        "openai_base_url": server.openai_base_url,
        "anthropic_base_url": server.anthropic_base_url,
        "llm_timeout_s": 0.5,
        "llm_retries": 3,
        "llm_backoff_s": 0.01,
        "llm_stream": True,
    }
    return Settings(**(values | overrides))


def client_for(provider: str, tmp_path: Path, server: StandInServer, **overrides: Any) -> LLMClient:
    return make_client(
        parse_model_spec(f"{provider}:test-model"), settings_for(tmp_path, server, **overrides)
    )


# Answers and usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_text_and_token_usage_come_back(
    provider: str, stream: bool, tmp_path: Path, script: Script, server: StandInServer
) -> None:
    script.add(
        Reply("Use a cosine schedule with warmup.", input_tokens=1200, output_tokens=9, cached_tokens=1000)
    )
    completion = client_for(provider, tmp_path, server, llm_stream=stream).complete(ASK)

    assert completion.text == "Use a cosine schedule with warmup."
    assert completion.model == "test-model"
    assert (completion.input_tokens, completion.output_tokens, completion.cached_tokens) == (1200, 9, 1000)
    assert completion.attempts == 1
    assert completion.stop_reason == ("stop" if provider == "openai" else "end_turn")
    (sent,) = server.requests
    assert sent.body.get("stream", False) is stream


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streamed_and_whole_calls_give_the_same_completion(
    provider: str, tmp_path: Path, script: Script, server: StandInServer
) -> None:
    reply = Reply(
        "Halve the learning rate.\nKeep the batch size.",
        input_tokens=80,
        cached_tokens=64,
        cache_write_tokens=8,
    )
    script.add(reply, reply)
    streamed = client_for(provider, tmp_path, server, llm_stream=True).complete(ASK)
    whole = client_for(provider, tmp_path, server, llm_stream=False).complete(ASK)
    assert streamed == whole


@pytest.mark.parametrize("stream", STREAM)
def test_openai_sends_the_system_prompt_first_and_reads_cached_tokens(
    stream: bool, tmp_path: Path, script: Script, server: StandInServer
) -> None:
    script.add("first", "second")
    client = client_for("openai", tmp_path, server, llm_stream=stream)
    first = client.complete(ASK)
    second = client.complete(ASK)

    messages = server.requests[0].body["messages"]
    assert messages[0] == {"role": "system", "content": "You are the proposer."}
    assert messages[1] == {"role": "user", "content": "Suggest one idea."}
    assert first.cached_tokens == 0
    assert 0 < second.cached_tokens < second.input_tokens  # the repeated system prompt came from the cache
    if stream:
        assert server.requests[0].body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("stream", STREAM)
def test_anthropic_marks_cache_breakpoints_and_reads_cached_tokens(
    stream: bool, tmp_path: Path, script: Script, server: StandInServer
) -> None:
    request = LLMRequest(
        system="You are the implementer.",
        messages=(
            Message("user", "Here is train.py: ...", cache=True),
            Message("assistant", "A first patch."),
            Message("user", "It did not apply; try again."),
        ),
    )
    script.add("written", "read")
    client = client_for("anthropic", tmp_path, server, llm_stream=stream)
    first = client.complete(request)
    second = client.complete(request)

    body = server.requests[0].body
    assert body["system"] == [
        {"type": "text", "text": "You are the implementer.", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Here is train.py: ...", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["messages"][1]["content"] == "A first patch."  # no breakpoint where none was asked for
    assert (first.cached_tokens, second.cache_write_tokens) == (0, 0)
    assert first.cache_write_tokens > 0 and second.cached_tokens == first.cache_write_tokens
    # input_tokens counts the whole prompt, cached and written tokens included.
    assert first.input_tokens == second.input_tokens > first.cache_write_tokens


@pytest.mark.parametrize("provider", PROVIDERS)
def test_temperature_is_sent_only_when_set(
    provider: str, tmp_path: Path, script: Script, server: StandInServer
) -> None:
    script.add("default", "set")
    client = client_for(provider, tmp_path, server)
    client.complete(ASK)
    client.complete(LLMRequest(system=ASK.system, messages=ASK.messages, temperature=0.2))

    assert "temperature" not in server.requests[0].body
    # Anthropic's current API version refuses sampling parameters outright (the stand-in does too).
    expected = 0.2 if provider == "openai" else None
    assert server.requests[1].body.get("temperature") == expected


# Retries -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limit_waits_for_retry_after_then_succeeds(
    provider: str, stream: bool, tmp_path: Path, script: Script, server: StandInServer
) -> None:
    script.add(Reply(status=429, error="slow down", retry_after="0.3"), "after the wait")
    started = time.monotonic()
    completion = client_for(provider, tmp_path, server, llm_stream=stream).complete(ASK)

    assert completion.text == "after the wait"
    assert completion.attempts == 2
    assert time.monotonic() - started >= 0.3  # the server's wait, not the 0.01 s backoff


@pytest.mark.parametrize(("provider", "status"), [("openai", 503), ("anthropic", 529), ("anthropic", 500)])
def test_overloaded_server_is_retried(
    provider: str, status: int, tmp_path: Path, script: Script, server: StandInServer
) -> None:
    script.add(Reply(status=status, error="overloaded"), Reply(status=status), "finally")
    completion = client_for(provider, tmp_path, server).complete(ASK)
    assert (completion.text, completion.attempts) == ("finally", 3)


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_reply_slower_than_the_timeout_is_retried(
    provider: str, stream: bool, tmp_path: Path, script: Script, server: StandInServer
) -> None:
    script.add(Reply("too late", delay_s=2.0), "on time")
    completion = client_for(provider, tmp_path, server, llm_stream=stream, llm_timeout_s=0.3).complete(ASK)
    assert (completion.text, completion.attempts) == ("on time", 2)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_that_stalls_midway_is_retried(
    provider: str, tmp_path: Path, script: Script, server: StandInServer
) -> None:
    script.add(Reply("a long answer that never finishes", stall_s=2.0), "a whole answer")
    completion = client_for(provider, tmp_path, server, llm_timeout_s=0.3).complete(ASK)
    assert (completion.text, completion.attempts) == ("a whole answer", 2)


@pytest.mark.parametrize("status", [400, 401])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_refused_request_is_not_retried_and_never_shows_the_key(
    provider: str, status: int, tmp_path: Path, script: Script, server: StandInServer
) -> None:
    key = OPENAI_KEY if provider == "openai" else ANTHROPIC_KEY
    # Servers do echo a refused key ("Incorrect API key provided: sk-..."): it must not reach the error.
    script.add(Reply(status=status, error=f"Incorrect API key provided: {key}"))
    with pytest.raises(LLMError) as caught:
        client_for(provider, tmp_path, server).complete(ASK)

    message = str(caught.value)
    assert caught.value.retryable is False
    assert f"{provider}:test-model" in message and f"HTTP {status}" in message
    assert "Incorrect API key provided" in message
    assert key not in message and key not in repr(caught.value.__dict__)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_running_out_of_retries_is_a_retryable_error(
    provider: str, tmp_path: Path, script: Script, server: StandInServer
) -> None:
    script.add(*[Reply(status=500, error="the model crashed")] * 3)
    with pytest.raises(LLMError) as caught:
        client_for(provider, tmp_path, server, llm_retries=2).complete(ASK)

    assert caught.value.retryable is True
    assert "HTTP 500: the model crashed" in str(caught.value) and "3 attempts" in str(caught.value)
    assert len(server.requests) == 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unreachable_server_is_retried_then_a_retryable_error(provider: str, tmp_path: Path) -> None:
    with StandInServer(Script([])) as gone:
        pass  # closed: its port now refuses connections
    with pytest.raises(LLMError, match="connection failed") as caught:
        client_for(provider, tmp_path, gone, llm_retries=1).complete(ASK)
    assert caught.value.retryable is True and "2 attempts" in str(caught.value)


def test_script_that_runs_out_says_so(tmp_path: Path, script: Script, server: StandInServer) -> None:
    script.add("the only reply")
    client = client_for("openai", tmp_path, server, llm_retries=0)
    client.complete(ASK)
    with pytest.raises(LLMError, match="ran out of replies after 1 calls"):
        client.complete(ASK)


# Model specs and keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("openai:gpt-5", ModelSpec("openai", "gpt-5")),
        ("anthropic:claude-sonnet-4-5", ModelSpec("anthropic", "claude-sonnet-4-5")),
        (
            "openai-compatible:http://127.0.0.1:8000/v1:qwen",
            ModelSpec("openai-compatible", "qwen", "http://127.0.0.1:8000/v1"),
        ),
        (
            "openai-compatible:http://127.0.0.1:11434/v1:llama3:8b",
            ModelSpec("openai-compatible", "llama3:8b", "http://127.0.0.1:11434/v1"),
        ),
        (
            "openai-compatible:https://llm.internal/api/v1:org/model-7b",
            ModelSpec("openai-compatible", "org/model-7b", "https://llm.internal/api/v1"),
        ),
    ],
)
def test_model_spec_accepted_forms(text: str, spec: ModelSpec) -> None:
    assert parse_model_spec(text) == spec
    assert str(spec) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "gpt-5",
        "openai:",
        "cohere:command-r",
        "openai-compatible:http://127.0.0.1:8000:qwen",  # no path
        "openai-compatible:http://127.0.0.1:8000/v1",  # no model
        "openai-compatible:ftp://127.0.0.1/v1:qwen",
        "openai-compatible:qwen",
    ],
)
def test_model_spec_rejected_forms_name_the_value_and_the_accepted_ones(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_model_spec(text)
    message = str(caught.value)
    assert repr(text) in message and "openai-compatible:http(s)://HOST[:PORT]/PATH:MODEL" in message
    assert "\n" not in message


def test_openai_compatible_sends_to_its_own_url_with_the_placeholder_key(
    tmp_path: Path, script: Script, server: StandInServer
) -> None:
    script.add("from the local model", "with a key")
    spec = parse_model_spec(f"openai-compatible:{server.url}/local/v1:llama3:8b")
    listed = settings_for(tmp_path, server, llm_base_urls=server.url)  # see test_api_limits for unlisted ones
    assert make_client(spec, listed).complete(ASK).text == "from the local model"
    with_key = settings_for(
        tmp_path, server, llm_base_urls=server.url, openai_compatible_api_key="local-secret"
    )
    make_client(spec, with_key).complete(ASK)

    first, second = server.requests
    assert (first.path, first.api_key, first.body["model"]) == (
        "/local/v1/chat/completions",
        "not-needed",
        "llama3:8b",
    )
    assert first.body["max_tokens"] == ASK.max_tokens  # the name every compatible server knows
    assert second.api_key == "local-secret"


def test_each_provider_gets_its_own_key(tmp_path: Path, script: Script, server: StandInServer) -> None:
    script.add("a", "b")
    client_for("openai", tmp_path, server).complete(ASK)
    client_for("anthropic", tmp_path, server).complete(ASK)
    assert [(r.provider, r.api_key) for r in server.requests] == [
        ("openai", OPENAI_KEY),
        ("anthropic", ANTHROPIC_KEY),
    ]
    assert server.requests[0].body["max_completion_tokens"] == ASK.max_tokens


@pytest.mark.parametrize(
    ("provider", "env_var"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
def test_client_without_a_key_names_the_variable_to_set(provider: str, env_var: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, openai_api_key=None, anthropic_api_key=None)
    with pytest.raises(ConfigError, match=env_var):
        make_client(parse_model_spec(f"{provider}:some-model"), settings)


# The stand-in itself -------------------------------------------------------------------------------


def test_stand_in_answers_from_the_prompt(tmp_path: Path) -> None:
    def shout(call: StandInCall) -> Reply:
        return Reply(f"{call.provider} {call.system} {call.last_text.upper()}")

    with StandInServer(shout) as server:
        assert (
            client_for("openai", tmp_path, server).complete(ASK).text
            == "openai You are the proposer. SUGGEST ONE IDEA."
        )
        anthropic = client_for("anthropic", tmp_path, server, llm_stream=False).complete(ASK)
        assert anthropic.text == "anthropic You are the proposer. SUGGEST ONE IDEA."


@pytest.mark.parametrize(
    ("path", "error_type"),
    [("/v1/chat/completions", "invalid_request_error"), ("/v1/messages", "authentication_error")],
)
def test_stand_in_refuses_a_request_without_a_key(path: str, error_type: str, server: StandInServer) -> None:
    body = json.dumps({"model": "m", "messages": []}).encode()
    request = urllib.request.Request(server.url + path, body, {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["error"]["type"] == error_type
    assert server.requests[0].api_key is None


def test_completion_counts_http_attempts_not_calls(
    tmp_path: Path, script: Script, server: StandInServer
) -> None:
    script.add(Reply(status=503), "ok", "ok again")
    client = client_for("anthropic", tmp_path, server)
    assert [client.complete(ASK).attempts for _ in range(2)] == [2, 1]
