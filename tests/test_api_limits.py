"""What the API refuses to take: bodies over the cap (before the token is checked), free text over each
field's length, and OpenAI-compatible servers the operator has not listed, which the agents refuse too.

The API runs under a real uvicorn on loopback and is called over real HTTP (see test_api)."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from autoresearch.adapters.db import SqlStore
from autoresearch.adapters.llm.base import parse_model_spec
from autoresearch.adapters.llm.providers import make_client
from autoresearch.adapters.llm.servers import ServerUrl, check_server
from autoresearch.agents.build import check_clients, open_agents
from autoresearch.agents.config import agents_config
from autoresearch.api import create_app
from autoresearch.api.schemas import DIFF_CHARS, MODEL_CHARS, NAME_CHARS, TEXT_CHARS
from autoresearch.api.settings import ApiSettings
from autoresearch.domain.model import Scope
from autoresearch.errors import ConfigError
from autoresearch.settings import Settings
from autoresearch.testing.llm_server import StandInServer
from tests import test_api
from tests.test_api import RECIPE_DIFF, Api, issue_tokens, make_campaign, problem_of, running_api
from tests.test_campaign import ENV

postgres = pytest.mark.postgres  # the tests that serve the API or use the store
database_url, settings, api = test_api.database_url, test_api.settings, test_api.api  # shared fixtures
MB = 2**20
LISTED = "http://LLM.internal.:8000/v1/, https://gateway.example/openai"  # normalised when compared
LISTED_MODEL = "openai-compatible:http://llm.internal:8000/v1:qwen"


# the body cap ----------------------------------------------------------------------------------
def raw_request(url: str, head: str) -> socket.socket:
    """A connection to the served API that has sent `head` (request line and headers) and nothing more."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers and JSON body of the answer, read until the server closes the connection."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # it hung up with some of our upload unread: what came first stays
            break
        if not chunk:
            break
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def assert_too_large(status: int, headers: dict[str, str], body: dict[str, Any], cap: int) -> None:
    assert status == 413, body
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert body["status"] == 413 and body["title"] == "Request Entity Too Large"
    assert f"{cap:,} bytes" in body["detail"] and "AUTORESEARCH_API_MAX_BODY_BYTES" in body["detail"]


@postgres
@pytest.mark.parametrize("scope", [None, Scope.WRITE])
def test_a_60_mb_body_declared_in_content_length_is_refused_before_a_byte_of_it_is_sent(
    api: Api, scope: Scope | None
) -> None:
    auth = f"Authorization: Bearer {api.secrets[scope]}\n" if scope is not None else ""
    started = time.monotonic()
    sock = raw_request(
        api.url,
        f"POST /api/v1/campaigns HTTP/1.1\nHost: api\nContent-Type: application/json\n{auth}"
        f"Content-Length: {60 * MB}\n",
    )
    with sock:
        status, headers, body = read_answer(sock)  # the server answers, and hangs up, with no body sent

    assert_too_large(status, headers, body, 2 * MB)
    assert time.monotonic() - started < 5


@postgres
def test_a_60_mb_chunked_body_is_cut_off_at_the_cap_and_the_rest_never_read(api: Api) -> None:
    sock = raw_request(
        api.url,
        "POST /api/v1/campaigns HTTP/1.1\nHost: api\nContent-Type: application/json\nTransfer-Encoding: chunked\n",
    )
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
    sent, pending = 0, b""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
    receive_buffer_max = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    kernel_buffers = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) + receive_buffer_max
    with sock:
        sock.setblocking(False)
        while sent < 60 * MB:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable or not writable:
                break  # the server answered (or stopped reading: it never would, before the cap)
            pending = pending or chunk
            try:
                done = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent, pending = sent + done, pending[done:]
        sock.setblocking(True)
        status, headers, body = read_answer(sock)

    assert_too_large(status, headers, body, 2 * MB)
    # Past the cap, only what the kernel buffers on either side and uvicorn's 64 KiB was sent: never 60 MB.
    assert 2 * MB < sent <= 2 * MB + kernel_buffers + 2 * 64 * 1024 < 60 * MB


@postgres
def test_a_streamed_body_of_unknown_length_gets_its_413_while_the_client_still_sends(api: Api) -> None:
    yielded = 0

    def body() -> Iterator[bytes]:
        nonlocal yielded
        while yielded < 60 * MB:
            yielded += 64 * 1024
            yield b" " * 64 * 1024

    try:
        response = httpx2.post(f"{api.url}/api/v1/campaigns", content=body(), timeout=10)
    except httpx2.TransportError:  # the server hung up on the upload before the client read the 413
        pass
    else:
        problem_of(response, 413)
    assert yielded < 60 * MB  # it stopped reading: the client could not hand over the whole body


@postgres
def test_the_cap_is_a_setting_and_a_body_under_it_reaches_the_token_check(
    settings: Settings,
    store: SqlStore,
) -> None:
    app = create_app(settings.model_copy(update={"api_max_body_bytes": 1000}), ApiSettings())
    with running_api(app, issue_tokens(store)) as served:
        over = served.anon.post("/api/v1/campaigns", content=b" " * 1001)
        under = served.anon.post("/api/v1/campaigns", content=b" " * 999)
        pause = served.writer.post("/api/v1/campaigns/none/pause", content=b" " * 1001)  # reads no body

    assert "1,000 bytes" in problem_of(over, 413)["detail"]
    problem_of(under, 401)
    problem_of(pause, 413)


def test_the_default_cap_takes_a_seeded_diff_at_its_length_limit() -> None:
    diff = RECIPE_DIFF * (DIFF_CHARS // len(RECIPE_DIFF))
    body = json.dumps({"hypothesis": "h" * TEXT_CHARS, "rationale": "r" * TEXT_CHARS, "diff": diff})
    assert len(body.encode()) <= Settings.model_fields["api_max_body_bytes"].default


@postgres
def test_the_openapi_document_names_the_413_of_each_route_that_takes_a_body(api: Api) -> None:
    paths = api.anon.get("/api/v1/openapi.json").json()["paths"]
    with_body = [op for ops in paths.values() for op in ops.values() if "requestBody" in op]

    assert len(with_body) >= 4
    assert all("413" in op["responses"] for op in with_body)


# field lengths ---------------------------------------------------------------------------------
CAMPAIGN_FIELDS = {
    "goal": TEXT_CHARS,
    "environment": NAME_CHARS,
    "preset": NAME_CHARS,
    "strategy": NAME_CHARS,
    "name": 100,
    "proposer": MODEL_CHARS,
    "implementer": MODEL_CHARS,
    "analyst": MODEL_CHARS,
}
IDEA_FIELDS = {"hypothesis": TEXT_CHARS, "diff": DIFF_CHARS, "surface": NAME_CHARS, "rationale": TEXT_CHARS}


def too_long_errors(response: httpx2.Response, field: str) -> list[dict[str, Any]]:
    if response.status_code != 422:
        return []
    return [e for e in response.json().get("errors", []) if e["loc"] == ["body", field]]


def assert_refused_for_length(response: httpx2.Response, field: str, limit: int) -> None:
    body = problem_of(response, 422)
    assert [e["type"] for e in too_long_errors(response, field)] == ["string_too_long"]
    assert f"body.{field}: String should have at most {limit} characters" in body["detail"]
    assert "a" * 100 not in body["detail"]  # the text refused is not echoed back


@postgres
@pytest.mark.parametrize(("field", "limit"), CAMPAIGN_FIELDS.items())
def test_each_free_text_field_of_a_campaign_is_refused_past_its_length(
    api: Api, field: str, limit: int
) -> None:
    base = {"goal": "lower the loss", "environment": "tiny", "proposer": "stand-in"}

    over = api.writer.post("/api/v1/campaigns", json=base | {field: "a" * (limit + 1)})
    at = api.writer.post("/api/v1/campaigns", json=base | {field: "a" * limit})

    assert_refused_for_length(over, field, limit)
    assert too_long_errors(at, field) == []  # refused for something else at most (an unknown preset)


@postgres
@pytest.mark.parametrize(("field", "limit"), IDEA_FIELDS.items())
def test_each_free_text_field_of_an_idea_is_refused_past_its_length(
    api: Api, store: SqlStore, field: str, limit: int
) -> None:
    make_campaign(store, "speedrun", trials=1, distributed=True)
    base = {"hypothesis": "move y", "diff": RECIPE_DIFF}

    over = api.writer.post("/api/v1/campaigns/speedrun/ideas", json=base | {field: "a" * (limit + 1)})
    at = api.writer.post("/api/v1/campaigns/speedrun/ideas", json=base | {field: "a" * limit})

    assert_refused_for_length(over, field, limit)
    assert too_long_errors(at, field) == []


@postgres
def test_a_token_name_and_a_campaign_reference_are_refused_past_their_length(api: Api) -> None:
    assert_refused_for_length(api.admin.post("/api/v1/tokens", json={"name": "a" * 101}), "name", 100)
    response = api.reader.get(f"/api/v1/campaigns/{'a' * (NAME_CHARS + 1)}")
    assert problem_of(response, 422)["errors"][0]["loc"] == ["path", "ref"]


# the servers a campaign may name ---------------------------------------------------------------
@pytest.fixture
def listed_api(settings: Settings, store: SqlStore) -> Iterator[Api]:
    """The API of an operator who listed two OpenAI-compatible servers."""
    app = create_app(settings.model_copy(update={"llm_base_urls": LISTED}), ApiSettings())
    with running_api(app, issue_tokens(store)) as served:
        yield served


def submit(api: Api, **models: str) -> httpx2.Response:
    return api.writer.post(
        "/api/v1/campaigns", json={"goal": "lower the loss", "environment": "tiny"} | models
    )


@postgres
@pytest.mark.parametrize(
    "model",
    [
        LISTED_MODEL,
        "openai-compatible:http://llm.internal:8000/v1/deployments/a:qwen",  # below the listed path
        "openai-compatible:http://LLM.Internal.:8000/v1/:qwen",  # case, trailing dot, trailing slash
        "openai-compatible:https://gateway.example:443/openai/v1:gpt-oss",  # the default port, spelled out
    ],
)
def test_a_campaign_may_name_a_listed_server(listed_api: Api, model: str) -> None:
    response = submit(listed_api, proposer=model)

    assert response.status_code == 201, response.text
    assert (
        listed_api.reader.get(f"/api/v1/campaigns/{response.json()['name']}").json()["agents"]["proposer"]
        == model
    )


REFUSED = {
    "another host": "http://evil.example:8000/v1",
    "user info before a listed host": "http://llm.internal@evil.example:8000/v1",
    "a listed host as user info": "http://llm.internal:8000@evil.example/v1",
    "a backslash before the host": "http://llm.internal\\@evil.example:8000/v1",
    "another port": "http://llm.internal:8001/v1",
    "another scheme": "https://llm.internal:8000/v1",
    "a longer path segment": "http://llm.internal:8000/v1evil",
    "a path that climbs out": "http://llm.internal:8000/v1/../admin",
    "a percent-escape": "http://llm.internal:8000/v1/%2e%2e/admin",
    "a query": "http://llm.internal:8000/v1?to=evil.example",
    "a host that only starts like one listed": "http://llm.internal.evil.example:8000/v1",
    "a listed path on another host": "https://evil.example/openai",
}


@postgres
@pytest.mark.parametrize("url", REFUSED.values(), ids=REFUSED.keys())
def test_a_campaign_naming_an_unlisted_server_is_refused(listed_api: Api, url: str) -> None:
    response = submit(listed_api, proposer=f"openai-compatible:{url}:qwen")

    detail = problem_of(response, 422)["detail"]
    if "openai-compatible:http(s)://HOST[:PORT]/PATH:MODEL" in detail:
        return  # not even a model spec: refused before any server is looked at
    assert detail.startswith("proposer: ") and "AUTORESEARCH_LLM_BASE_URLS" in detail
    assert listed_api.reader.get("/api/v1/campaigns").json() == []


@postgres
def test_the_userinfo_trick_reaches_the_server_check_and_is_refused_there(listed_api: Api) -> None:
    # `http://llm.internal:8000@evil.example/v1` is no model spec at all (a port must end in `/`); this is.
    response = submit(listed_api, proposer="openai-compatible:http://llm.internal@evil.example:8000/v1:qwen")

    detail = problem_of(response, 422)["detail"]
    assert "user info" in detail and "AUTORESEARCH_LLM_BASE_URLS" in detail


@postgres
@pytest.mark.parametrize("role", ["implementer", "analyst"])
def test_every_role_s_server_is_checked_not_only_the_proposer_s(listed_api: Api, role: str) -> None:
    response = submit(
        listed_api, proposer=LISTED_MODEL, **{role: "openai-compatible:http://evil.example/v1:m"}
    )

    detail = problem_of(response, 422)["detail"]
    assert detail.startswith(f"{role}: ") and "AUTORESEARCH_LLM_BASE_URLS" in detail


@postgres
def test_with_no_servers_listed_the_api_takes_no_server_of_a_campaign_s_own(api: Api) -> None:
    response = submit(api, proposer="openai-compatible:http://127.0.0.1:8000/v1:qwen")

    detail = problem_of(response, 422)["detail"]
    assert "AUTORESEARCH_LLM_BASE_URLS" in detail and "empty" in detail
    assert submit(api, proposer="stand-in").status_code == 201  # a stand-in names no server


@postgres
def test_a_malformed_list_stops_the_api_from_starting(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="AUTORESEARCH_LLM_BASE_URLS: 'http://user@llm:8000/v1'"):
        create_app(settings.model_copy(update={"llm_base_urls": "http://ok:1/v1, http://user@llm:8000/v1"}))


# where the key would be sent -------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[StandInServer]:
    with StandInServer(lambda call: "never asked") as stand_in:
        yield stand_in


def keyed(tmp_path: Path, listed: str = "") -> Settings:
    return Settings(data_dir=tmp_path, openai_compatible_api_key="sk-operator-secret", llm_base_urls=listed)


def test_no_client_is_built_that_would_send_the_key_to_an_unlisted_server(
    tmp_path: Path, server: StandInServer
) -> None:
    spec = parse_model_spec(f"openai-compatible:{server.openai_base_url}:m")

    with pytest.raises(ConfigError, match="AUTORESEARCH_LLM_BASE_URLS"):
        make_client(spec, keyed(tmp_path))  # a campaign of the cluster: the default
    with pytest.raises(ConfigError, match="AUTORESEARCH_LLM_BASE_URLS"):
        make_client(spec, keyed(tmp_path, "http://127.0.0.1:1/v1"), local_run=True)  # listed: the list binds
    assert server.requests == []


@postgres
def test_a_cluster_campaign_already_in_the_database_cannot_reach_an_unlisted_server(
    tmp_path: Path, store: SqlStore, server: StandInServer
) -> None:
    """Written around the API (a `run --distributed`, or straight into the database): the controller and
    the workers open its agents through `open_agents`, which refuses."""
    config = agents_config(f"openai-compatible:{server.openai_base_url}:m")
    assert config is not None
    campaign = make_campaign(store, "around", distributed=True, agents=config.model_dump(mode="json"))

    refused = pytest.raises(ConfigError, match="AUTORESEARCH_LLM_BASE_URLS")
    with refused, open_agents(store, campaign, ENV, keyed(tmp_path), None, threading.Event()):
        pass
    with open_agents(store, campaign, ENV, keyed(tmp_path, server.url), None, threading.Event()) as agents:
        assert agents is not None  # once listed, it may
    assert server.requests == []


@postgres
def test_the_operator_s_own_local_run_names_any_server_while_the_list_is_empty(
    tmp_path: Path, store: SqlStore, server: StandInServer
) -> None:
    config = agents_config(f"openai-compatible:{server.openai_base_url}:m")
    assert config is not None
    local = make_campaign(store, "local", agents=config.model_dump(mode="json"))

    check_clients(config, keyed(tmp_path), local_run=True)
    with open_agents(store, local, ENV, keyed(tmp_path), None, threading.Event()) as agents:
        assert agents is not None
    with pytest.raises(ConfigError, match=r"^proposer: .*AUTORESEARCH_LLM_BASE_URLS"):
        check_clients(config, keyed(tmp_path), local_run=False)  # `run --distributed`
    refused = pytest.raises(ConfigError, match="AUTORESEARCH_LLM_BASE_URLS")
    with refused, open_agents(store, local, ENV, keyed(tmp_path, "http://other:1"), None, threading.Event()):
        pass


@pytest.mark.parametrize(
    ("entry", "url", "covered"),
    [
        ("http://llm:8000/v1", "http://llm:8000/v1", True),
        ("http://llm:8000", "http://llm:8000/anything/v1", True),
        ("http://LLM.:80/", "http://llm/v1", True),
        ("http://[0:0::1]:8000/v1", "http://[::1]:8000/v1/x", True),
        ("http://llm:8000/v1", "http://llm:8000/v2", False),
        ("http://llm:8000/v1", "http://llm:8000/", False),
        ("http://llm:8000/v1", "http://llm:8000/V1", False),  # paths are case-sensitive
        ("http://127.0.0.1:8000", "http://2130706433:8000/v1", False),  # one host, another spelling: refused
        ("http://llm", "https://llm:80/v1", False),
    ],
)
def test_a_url_is_covered_by_an_entry_of_its_scheme_host_port_and_path(
    entry: str, url: str, covered: bool
) -> None:
    assert ServerUrl.parse(entry).covers(ServerUrl.parse(url)) is covered


def test_openai_and_anthropic_models_name_no_server_of_their_own() -> None:
    for text in ("openai:gpt-5", "anthropic:claude-sonnet-4-5"):
        check_server(parse_model_spec(text), "", local_run=False)
