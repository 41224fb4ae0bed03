"""The HTTP API, served by a real uvicorn on loopback and called over real HTTP.

On PostgreSQL, the database of the distributed deployment the API serves; once on SQLite too.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import event

from autoresearch import __version__
from autoresearch.adapters.artifacts import LocalArtifacts, bundle_key, code_bundle, read_bundle
from autoresearch.adapters.db import SqlStore, open_store
from autoresearch.adapters.db.store import safe_url
from autoresearch.api import create_app
from autoresearch.api.schemas import LineagePublic
from autoresearch.api.settings import ApiSettings
from autoresearch.dashboard.session import CSRF_HEADER, SESSION_COOKIE, csrf_token
from autoresearch.domain.model import (
    Campaign,
    CampaignStatus,
    FailureLabel,
    IdeaOrigin,
    Role,
    Scope,
    Trial,
    TrialResult,
)
from autoresearch.errors import StoreError
from autoresearch.services.auth import issue_token
from autoresearch.services.runner import code_hash
from autoresearch.settings import Settings
from autoresearch.testing import ENVIRONMENTS_DIR

postgres = pytest.mark.postgres
STAND_IN_AGENTS = {"proposer": "stand-in", "implementer": "stand-in", "analyst": None}
# A patch of the tiny environment's recipe, against its baseline.
RECIPE_DIFF = (
    "--- a/recipe.py\n+++ b/recipe.py\n@@ -1,3 +1,3 @@\n x = 0.0\n-y = 0.0\n+y = -1.0\n params = 10\n"
)
EVALUATOR_DIFF = "--- a/evaluate.py\n+++ b/evaluate.py\n@@ -1,1 +1,1 @@\n-import json\n+import os\n"


# serving ---------------------------------------------------------------------------------------
@contextmanager
def serving(app: FastAPI, **config: Any) -> Iterator[str]:
    """Run `app` under uvicorn in a thread on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound here, so no other process can take the port in between
    port = sock.getsockname()[1]
    options = {"log_level": "warning", "timeout_graceful_shutdown": 2} | config
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the API server did not start (see its log above)")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class Api:
    """A served app and a client per kind of caller: none (`anon`), and a token of each scope."""

    app: FastAPI
    url: str
    secrets: dict[Scope, str]
    clients: dict[Scope | None, httpx2.Client] = field(default_factory=dict)

    @property
    def anon(self) -> httpx2.Client:
        return self.clients[None]

    @property
    def reader(self) -> httpx2.Client:
        return self.clients[Scope.READ]

    @property
    def writer(self) -> httpx2.Client:
        return self.clients[Scope.WRITE]

    @property
    def admin(self) -> httpx2.Client:
        return self.clients[Scope.ADMIN]


@contextmanager
def running_api(app: FastAPI, secrets: dict[Scope, str], **config: Any) -> Iterator[Api]:
    with serving(app, **config) as url, ExitStack() as stack:
        api = Api(app, url, secrets)
        for scope in (None, *Scope):
            headers = {"Authorization": f"Bearer {secrets[scope]}"} if scope is not None else {}
            api.clients[scope] = stack.enter_context(httpx2.Client(base_url=url, headers=headers, timeout=10))
        yield api


def issue_tokens(store: SqlStore) -> dict[Scope, str]:
    return {scope: issue_token(store, name=f"{scope}-token", scope=scope)[0] for scope in Scope}


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL for this module's `store` and `api`."""
    return postgres_url


@pytest.fixture
def settings(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Artifacts in a temporary folder; the tiny test environment; no LLM keys; no API knobs set."""
    monkeypatch.setenv("AUTORESEARCH_ARTIFACTS_URL", str(tmp_path / "artifacts"))
    for name in ("OPENAI_API_KEY", "AUTORESEARCH_OPENAI_API_KEY", "AUTORESEARCH_API_ANONYMOUS_READS"):
        monkeypatch.delenv(name, raising=False)
    return Settings(
        data_dir=tmp_path / "data", database_url=database_url, environments_path=str(ENVIRONMENTS_DIR)
    )


@pytest.fixture
def api(settings: Settings, store: SqlStore) -> Iterator[Api]:
    """The API over `store`'s database, with a token of each scope; event streams beat every 0.2 s."""
    app = create_app(settings, ApiSettings(events_heartbeat_s=0.2))
    with running_api(app, issue_tokens(store)) as served:
        yield served


# campaigns made through the store --------------------------------------------------------------
def make_campaign(
    store: SqlStore,
    name: str,
    *,
    trials: int = 0,
    distributed: bool = False,
    agents: dict[str, Any] | None = None,
) -> Campaign:
    """A campaign on the tiny environment whose baseline and first `trials - 1` children scored."""
    campaign = store.create_campaign(
        name=name,
        environment="tiny",
        preset="quick",
        strategy="evolve",
        goal="lower loss",
        trial_budget=10,
        concurrency=2,
        seed=0,
        agents=agents,
        distributed=distributed,
    )
    parent: Trial | None = None
    for number in range(trials):
        origin = IdeaOrigin.BASELINE if number == 0 else IdeaOrigin.CATALOG
        trial = add(store, campaign, parent, origin=origin, hypothesis=f"idea {number}: try it")
        finished = finish(store, trial, TrialResult.scored(10.0 - number))
        parent = parent or finished
    return campaign


def add(store: SqlStore, campaign: Campaign, parent: Trial | None, **idea: Any) -> Trial:
    parents = (parent.id,) if parent is not None else ()
    made = store.add_idea(campaign.id, parent_trial_ids=parents, **{"origin": IdeaOrigin.CATALOG} | idea)
    return store.add_trial(campaign.id, idea_id=made.id, parent_id=parent.id if parent else None, seed=0)


def finish(store: SqlStore, trial: Trial, result: TrialResult) -> Trial:
    assert store.claim_trial(trial.id) is not None
    finished = store.finish_trial(trial.id, result)
    assert finished is not None
    return finished


def grow(store: SqlStore, name: str, size: int, seed: int = 0) -> tuple[Campaign, list[Trial]]:
    """A campaign of `size` trials: each a child of a random scored one, scores on a coarse grid (many
    ties), about a third failed with one of two labels, the last few still pending or running."""
    rng = random.Random(seed)
    campaign = make_campaign(store, name)
    scored: list[Trial] = []
    trials: list[Trial] = []
    for number in range(size):
        parent = rng.choice(scored) if scored else None
        origin = IdeaOrigin.BASELINE if parent is None else IdeaOrigin.CATALOG
        trial = add(store, campaign, parent, origin=origin, hypothesis=f"idea {number}: change {number}")
        if number >= size - 4:
            if number % 2:
                store.claim_trial(trial.id)
            trials.append(store.get_trial(trial.id))
            continue
        roll = rng.random()
        if parent is None or roll < 0.65:
            trial = finish(store, trial, TrialResult.scored(float(rng.randint(1, 20))))
            scored.append(trial)
        else:
            label = FailureLabel.CRASH if roll < 0.85 else FailureLabel.OOM
            trial = finish(store, trial, TrialResult.failed(label, "it broke"))
        trials.append(trial)
    return campaign, trials


def problem_of(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"] == "about:blank" and body["detail"]
    return body


# health and campaigns --------------------------------------------------------------------------
@postgres
def test_health_needs_no_token_and_hides_the_database_password(api: Api, database_url: str) -> None:
    response = api.anon.get("/api/v1/health")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": __version__,
        "database": safe_url(database_url),
        "process": os.getpid(),  # the server runs in a thread of the tests
    }
    assert response.json()["database"].startswith("postgresql+psycopg://")


@postgres
def test_the_server_migrates_a_fresh_database_when_it_starts(settings: Settings) -> None:
    app = create_app(settings, ApiSettings(anonymous_reads=True))
    with serving(app) as url:  # nothing but the server has opened this database
        response = httpx2.get(f"{url}/api/v1/campaigns")

    assert response.status_code == 200
    assert response.json() == []


@postgres
def test_api_workers_each_take_a_share_of_a_burst_of_connections(database_url: str, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")}
    env |= {"AUTORESEARCH_DATABASE_URL": database_url, "AUTORESEARCH_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "autoresearch", "api", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline, started = time.monotonic() + 60, set()
        while len(started) < 2:  # both workers listen: a new connection reaches either
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()
            try:
                started.add(httpx2.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).json()["process"])
            except httpx2.TransportError:
                time.sleep(0.2)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]  # a burst
        for client in clients:
            client.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        answered_by = set()
        for client in clients:
            with client, client.makefile("rb") as answer:
                answered_by.add(json.loads(answer.read().split(b"\r\n\r\n", 1)[1])["process"])

        assert len(answered_by) == 2 and server.pid not in answered_by
        second = _cli(env, "api", "--port", str(port), "--workers", "2")  # the port is taken
        assert second.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        server.terminate()
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err


@postgres
def test_campaigns_are_listed_newest_first(api: Api, store: SqlStore) -> None:
    older = make_campaign(store, "older")
    newer = make_campaign(store, "newer", distributed=True)

    response = api.reader.get("/api/v1/campaigns")

    assert response.status_code == 200
    listed = response.json()
    assert [c["id"] for c in listed] == [newer.id, older.id]
    assert listed[0] == {
        "id": newer.id,
        "name": "newer",
        "environment": "tiny",
        "preset": "quick",
        "strategy": "evolve",
        "goal": "lower loss",
        "status": "running",
        "trial_budget": 10,
        "concurrency": 2,
        "seed": 0,
        "train_seed": 0,
        "confirm_top": 0,
        "confirm_seeds": 0,
        "race": 0,
        "seconds_budget": None,
        "distributed": True,
        "controller": "",
        "created_at": listed[0]["created_at"],
    }
    assert datetime.fromisoformat(listed[0]["created_at"]) == newer.created_at


@postgres
def test_a_campaign_by_name_or_id_carries_its_counts_best_trial_and_llm_usage(
    api: Api, store: SqlStore
) -> None:
    campaign = make_campaign(store, "speedrun", trials=3, agents=STAND_IN_AGENTS | {"budget": {"dollars": 5}})
    best = store.get_trial_by_number(campaign.id, 2)  # scores 10, 9, 8: lower is better in tiny
    failed = add(store, campaign, best, hypothesis="break it")
    finish(store, failed, TrialResult.failed(FailureLabel.CRASH, "boom"))
    store.claim_trial(add(store, campaign, best, hypothesis="still running").id)
    add(store, campaign, best, hypothesis="waiting")
    store.add_llm_call(
        campaign.id,
        role=Role.PROPOSER,
        model="stand-in",
        template="proposer@v1",
        prompt={"system": "s", "messages": []},
        response="[]",
        input_tokens=120,
        output_tokens=30,
        dollars=0.25,
    )

    by_name = api.reader.get("/api/v1/campaigns/speedrun")
    by_id = api.reader.get(f"/api/v1/campaigns/{campaign.id}")

    assert by_name.status_code == by_id.status_code == 200
    assert by_name.json() == by_id.json()
    detail = by_name.json()
    assert detail["counts"] == {"pending": 1, "running": 1, "succeeded": 3, "failed": 1, "interrupted": 0}
    assert detail["trials_counted"] == 4
    assert detail["direction"] == "minimize"
    assert detail["best"]["number"] == 2 and detail["best"]["score"] == 8.0 and detail["best"]["parent"] == 0
    assert detail["agents"] == {
        "proposer": "stand-in",
        "implementer": "stand-in",
        "analyst": None,
        "budget": {"dollars": 5.0, "tokens": None},
    }
    assert detail["llm"]["total"]["tokens"] == 150 and detail["llm"]["total"]["dollars"] == 0.25
    assert set(detail["llm"]["roles"]) == {"proposer"}


@postgres
def test_a_campaign_without_scores_or_agents_has_no_best_trial_and_no_agents(
    api: Api, store: SqlStore
) -> None:
    make_campaign(store, "empty")

    detail = api.reader.get("/api/v1/campaigns/empty").json()

    assert detail["best"] is None and detail["agents"] is None
    assert detail["llm"]["roles"] == {} and detail["llm"]["total"]["calls"] == 0


@postgres
def test_an_unknown_campaign_is_a_404_problem_document(api: Api, store: SqlStore) -> None:
    make_campaign(store, "speedrun")

    response = api.reader.get("/api/v1/campaigns/no-such-campaign")

    problem = problem_of(response, 404)
    assert problem == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": problem["detail"],
    }
    assert "no-such-campaign" in problem["detail"]


@postgres
def test_an_unknown_route_is_a_problem_document_too(api: Api) -> None:
    problem_of(api.reader.get("/api/v1/no-such-route"), 404)
    problem_of(api.reader.delete("/api/v1/campaigns"), 405)


@postgres
def test_a_bug_is_a_500_problem_that_shows_nothing_internal_and_a_lost_database_a_503(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    served_store = api.app.state.store

    def bug() -> None:
        raise RuntimeError("internal detail: /srv/secret/path")

    def lost() -> None:
        raise StoreError("cannot reach the database at postgresql+psycopg://db:5432/autoresearch")

    monkeypatch.setattr(served_store, "list_campaigns", lost)
    unreachable = api.reader.get("/api/v1/campaigns")
    monkeypatch.setattr(served_store, "list_campaigns", bug)
    crashed = api.reader.get("/api/v1/campaigns")  # uvicorn then closes the connection: ask last

    assert "internal error" in problem_of(crashed, 500)["detail"] and "secret" not in crashed.text
    assert "cannot reach the database" in problem_of(unreachable, 503)["detail"]


# auth ------------------------------------------------------------------------------------------
ADMIN_ONLY = re.compile(r"^/api/v1/tokens")


def _write_routes(campaign: str, victim_token: int) -> list[tuple[str, str, Any, int]]:
    """Every route that changes something (or is for admins), with a body and the status it answers
    when allowed, in an order in which each succeeds once on `campaign`."""
    base = f"/api/v1/campaigns/{campaign}"
    new = {"goal": "lower loss", "environment": "tiny", "name": f"new-{campaign}"}
    return [
        ("POST", "/api/v1/campaigns", new, 201),
        ("PATCH", base, {"trials": 20}, 200),
        ("POST", f"{base}/ideas", {"hypothesis": "y = -1", "diff": RECIPE_DIFF}, 201),
        ("POST", f"{base}/trials/1/pin", None, 200),
        ("POST", f"{base}/trials/1/unpin", None, 200),
        ("POST", f"{base}/trials/1/veto", None, 200),
        ("POST", f"{base}/trials/1/unveto", None, 200),
        ("POST", f"{base}/pause", None, 200),
        ("POST", f"{base}/resume", None, 200),
        ("POST", f"{base}/cancel", None, 200),
        ("POST", "/api/v1/tokens", {"name": "made", "scope": "read"}, 201),
        ("GET", "/api/v1/tokens", None, 200),
        ("DELETE", f"/api/v1/tokens/{victim_token}", None, 204),
    ]


def _template(path: str) -> str:
    """A concrete path back to its OpenAPI template."""
    path = re.sub(r"^/api/v1/campaigns/[^/]+", "/api/v1/campaigns/{ref}", path)
    path = re.sub(r"/trials/\d+", "/trials/{number}", path)
    return re.sub(r"/tokens/\d+", "/tokens/{token_id}", path)


@postgres
def test_every_write_route_needs_a_write_token_and_token_routes_an_admin_one(
    api: Api, store: SqlStore
) -> None:
    """No token: 401. A token of too low a scope: 403. Then the route works, for a write token (or, on
    the token routes, only for an admin one) and for an admin token, each on a campaign of its own."""
    actual: dict[tuple[str, str, str], int] = {}
    expected: dict[tuple[str, str, str], int] = {}
    for allowed in (Scope.WRITE, Scope.ADMIN):
        campaign = make_campaign(store, f"by-{allowed}", trials=2, distributed=True).name
        victim = issue_token(store, name=f"victim-of-{allowed}", scope=Scope.READ)[1].id
        for method, path, body, success in _write_routes(campaign, victim):
            needed = Scope.ADMIN if ADMIN_ONLY.match(path) else Scope.WRITE
            callers = [None, *(s for s in Scope if not s.allows(needed))] if allowed is Scope.WRITE else []
            if allowed.allows(needed):
                callers.append(allowed)
            for caller in callers:
                response = api.clients[caller].request(method, path, json=body)
                key = (method, _template(path), str(caller))
                actual[key] = response.status_code
                expected[key] = 401 if caller is None else success if caller.allows(needed) else 403
                if response.status_code >= 400:
                    problem_of(response, response.status_code)
                if response.status_code == 401:
                    assert response.headers["www-authenticate"] == "Bearer"

    assert actual == expected
    documented = {
        (method.upper(), path)
        for path, operations in api.anon.get("/api/v1/openapi.json").json()["paths"].items()
        for method in operations
        if method != "get" or ADMIN_ONLY.match(path)
    }
    assert {(method, route) for method, route, _ in actual} == documented  # no such route is left out
    assert (
        store.get_campaign("by-write").status
        is store.get_campaign("by-admin").status
        is CampaignStatus.CANCELLED
    )


def _read_paths(api: Api, campaign: str, idea_id: int) -> list[str]:
    """Every read route of the OpenAPI document (but health and the document itself), filled in."""
    values = {"ref": campaign, "number": "1", "idea_id": str(idea_id), "name": "tiny"}
    paths = []
    for path, operations in api.anon.get("/api/v1/openapi.json").json()["paths"].items():
        if "get" in operations and not ADMIN_ONLY.match(path) and path != "/api/v1/health":
            paths.append(re.sub(r"\{(\w+)\}", lambda m: values[m[1]], path))
    return paths


def _status(client: httpx2.Client, path: str) -> int:
    with client.stream("GET", path) as response:  # the event stream never ends on its own
        return response.status_code


def _campaign_to_read(store: SqlStore, settings: Settings) -> tuple[Campaign, int]:
    """A campaign whose every read route answers 200: trial 1 has a code bundle; and an idea's id."""
    campaign = make_campaign(store, "speedrun", trials=1, distributed=True)
    code = {"recipe.py": "x = 1.0\n"}
    LocalArtifacts(Path(settings.artifacts_url)).put(bundle_key(code_hash(code)), code_bundle(code))
    finish(
        store, add(store, campaign, None, hypothesis="h"), TrialResult.scored(1.0, code_hash=code_hash(code))
    )
    return campaign, store.list_ideas(campaign.id)[-1].id


@postgres
def test_reads_need_a_read_token_by_default(api: Api, store: SqlStore, settings: Settings) -> None:
    campaign, idea_id = _campaign_to_read(store, settings)
    paths = _read_paths(api, campaign.name, idea_id)
    assert len(paths) == 15  # the report routes for `--api` included

    refused = {path: _status(api.anon, path) for path in paths}
    allowed = {path: _status(api.reader, path) for path in paths}

    assert refused == dict.fromkeys(paths, 401)
    assert allowed == dict.fromkeys(paths, 200)


@postgres
def test_anonymous_reads_are_off_unless_the_operator_turns_them_on(
    settings: Settings, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, idea_id = _campaign_to_read(store, settings)
    secrets = issue_tokens(store)
    with running_api(create_app(settings), secrets) as api:  # the variable is unset: off
        off = {path: _status(api.anon, path) for path in _read_paths(api, campaign.name, idea_id)}

    monkeypatch.setenv("AUTORESEARCH_API_ANONYMOUS_READS", "true")
    with running_api(create_app(settings), secrets) as api:
        on = {path: _status(api.anon, path) for path in _read_paths(api, campaign.name, idea_id)}
        write = api.anon.post("/api/v1/campaigns/speedrun/pause")
        admin = api.anon.get("/api/v1/tokens")
        made_up = api.anon.get("/api/v1/campaigns", headers={"Authorization": "Bearer ar_made-up"})
        malformed = api.anon.get("/api/v1/campaigns", headers={"Authorization": "Basic dXNlcjpwYXNz"})

    assert off == dict.fromkeys(off, 401)
    assert on == dict.fromkeys(off, 200)
    assert write.status_code == 401 and admin.status_code == 401
    assert made_up.status_code == malformed.status_code == 401  # refused even where none is needed
    assert store.get_campaign("speedrun").status is CampaignStatus.RUNNING


@postgres
def test_a_made_up_malformed_or_revoked_token_is_refused(api: Api, store: SqlStore) -> None:
    secret, token = issue_token(store, name="soon-revoked", scope=Scope.ADMIN)
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.anon.get("/api/v1/campaigns", headers=headers).status_code == 200
    store.revoke_token(token.id)

    for authorization in (f"Bearer {secret}", "Bearer ar_made-up", f"Basic {secret}", "Bearer", secret):
        response = api.anon.get("/api/v1/campaigns", headers={"Authorization": authorization})
        problem = problem_of(response, 401)
        assert secret not in problem["detail"]


@postgres
def test_a_dashboard_session_cookie_reads_and_writes_only_with_its_csrf_token(
    api: Api, store: SqlStore
) -> None:
    make_campaign(store, "speedrun", distributed=True)
    write, read = api.secrets[Scope.WRITE], api.secrets[Scope.READ]

    def browser(secret: str) -> httpx2.Client:
        return httpx2.Client(base_url=api.url, cookies={SESSION_COOKIE: secret})

    with browser(write) as writer, browser(read) as reader, browser("ar_made-up") as stale:
        shown = writer.get("/api/v1/campaigns/speedrun")
        forged = writer.post("/api/v1/campaigns/speedrun/pause")  # another site's form: no CSRF token
        guessed = writer.post("/api/v1/campaigns/speedrun/pause", headers={CSRF_HEADER: "0" * 64})
        too_low = reader.post("/api/v1/campaigns/speedrun/pause", headers={CSRF_HEADER: csrf_token(read)})
        refused = stale.get("/api/v1/campaigns/speedrun")
        assert store.get_campaign("speedrun").status is CampaignStatus.RUNNING
        paused = writer.post("/api/v1/campaigns/speedrun/pause", headers={CSRF_HEADER: csrf_token(write)})

    assert shown.status_code == 200
    assert CSRF_HEADER in problem_of(forged, 403)["detail"] and problem_of(guessed, 403)
    assert "write scope" in problem_of(too_low, 403)["detail"]
    assert "sign in again" in problem_of(refused, 401)["detail"]
    assert paused.status_code == 200 and paused.json()["status"] == "stopped"


@postgres
def test_admins_make_list_and_revoke_tokens_and_a_secret_is_shown_once(api: Api) -> None:
    made = api.admin.post("/api/v1/tokens", json={"name": "dashboard", "scope": "write"})

    assert made.status_code == 201
    token = made.json()
    assert token["secret"].startswith("ar_") and token["secret"].startswith(token["prefix"])
    assert made.headers["cache-control"] == "no-store"
    assert {k: token[k] for k in ("name", "scope", "revoked_at")} == {
        "name": "dashboard",
        "scope": "write",
        "revoked_at": None,
    }
    as_it = httpx2.Client(base_url=api.url, headers={"Authorization": f"Bearer {token['secret']}"})
    assert as_it.post("/api/v1/campaigns/none/pause").status_code == 404  # write scope: past auth

    listed = api.admin.get("/api/v1/tokens")
    assert listed.status_code == 200
    assert [t["name"] for t in listed.json()] == ["read-token", "write-token", "admin-token", "dashboard"]
    assert all("secret" not in t for t in listed.json()) and token["secret"] not in listed.text

    assert api.admin.delete(f"/api/v1/tokens/{token['id']}").status_code == 204
    assert as_it.get("/api/v1/campaigns").status_code == 401
    revoked = next(t for t in api.admin.get("/api/v1/tokens").json() if t["id"] == token["id"])
    assert revoked["revoked_at"] is not None
    assert api.admin.delete(f"/api/v1/tokens/{token['id']}").status_code == 204  # again: no change
    assert next(t for t in api.admin.get("/api/v1/tokens").json() if t["id"] == token["id"]) == revoked
    problem_of(api.admin.delete("/api/v1/tokens/9999"), 404)
    problem_of(api.admin.post("/api/v1/tokens", json={"name": "x", "scope": "root"}), 422)
    as_it.close()


@postgres
def test_no_response_or_log_line_contains_a_token_secret(
    settings: Settings, store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    make_campaign(store, "speedrun", trials=2, distributed=True)
    secrets = issue_tokens(store)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # every statement and its parameters
    seen: list[str] = []
    app = create_app(settings, ApiSettings(events_heartbeat_s=0.1))
    # No log config: uvicorn's loggers, its access log included, reach the captured root logger.
    with running_api(app, secrets, log_config=None, log_level="debug", access_log=True) as api:
        made = api.admin.post("/api/v1/tokens", json={"name": "new", "scope": "read"})
        new_secret = made.json()["secret"]
        fresh = httpx2.Client(base_url=api.url, headers={"Authorization": f"Bearer {new_secret}"})
        fake = httpx2.Client(base_url=api.url, headers={"Authorization": "Bearer ar_not-a-real-token-at-all"})
        calls: list[Callable[[], httpx2.Response]] = [
            lambda: fresh.get("/api/v1/campaigns/speedrun"),
            lambda: fresh.get("/api/v1/campaigns/speedrun/trials?limit=1000"),
            lambda: fresh.get("/api/v1/campaigns/missing"),
            lambda: fresh.post("/api/v1/campaigns/speedrun/pause"),
            lambda: fake.get("/api/v1/campaigns"),
            lambda: api.writer.post("/api/v1/campaigns", json={"goal": 1, "environment": "?"}),
            lambda: api.writer.post("/api/v1/campaigns/speedrun/pause"),
            lambda: api.reader.get("/api/v1/campaigns/speedrun/trials/1"),
            lambda: api.admin.get("/api/v1/tokens"),
            lambda: api.reader.get("/api/v1/campaigns/speedrun/events", headers={"Last-Event-ID": "x"}),
        ]
        for call in calls:
            response = call()
            seen.append(f"{response.status_code} {response.headers} {response.text}")
        with fresh.stream("GET", "/api/v1/campaigns/speedrun/events") as stream:
            seen.append(next(stream.iter_text()))
        fresh.close()
        fake.close()

    every_secret = [*secrets.values(), new_secret, "ar_not-a-real-token-at-all"]
    assert made.status_code == 201 and len(seen) == len(calls) + 1
    assert [s for s in every_secret if any(s in text for text in seen)] == []
    assert any("GET /api/v1/campaigns/speedrun" in r.getMessage() for r in caplog.records)  # logs were on
    assert [s for s in every_secret if s in caplog.text] == []


# environments ----------------------------------------------------------------------------------
@postgres
def test_environments_are_listed_with_their_metric_direction_and_presets(api: Api) -> None:
    listed = api.reader.get("/api/v1/environments")
    one = api.reader.get("/api/v1/environments/tiny")

    assert listed.status_code == one.status_code == 200
    tiny = next(env for env in listed.json() if env["name"] == "tiny")
    assert tiny == one.json()
    assert (tiny["metric"], tiny["direction"], tiny["default_preset"]) == ("loss", "minimize", "quick")
    presets = {p["name"]: p for p in tiny["presets"]}
    assert presets["quick"]["description"] == "Instant." and presets["quick"]["default"] is True
    assert presets["quarter_gpu"]["resources"] == {"cpu_threads": 1, "gpu": 0.25}
    assert presets["quick"]["resources"] == {"cpu_threads": 1, "gpu": 0.0}
    assert presets["strict"]["budget"]["wall_clock_s"] == 2.0
    assert {"nanogpt", "digits", "grpo"} <= {env["name"] for env in listed.json()}  # the bundled ones too
    nanogpt = next(env for env in listed.json() if env["name"] == "nanogpt")
    assert {p["name"]: p["budget"]["max_bytes"] for p in nanogpt["presets"]}["golf"] == 1_000_000


@postgres
def test_only_environments_on_the_search_path_are_served_by_name(api: Api, tmp_path: Path) -> None:
    problem_of(api.reader.get("/api/v1/environments/no-such-env"), 404)
    for name in ("..", "%2e%2e", "%2Ftmp", "Tiny"):
        assert api.reader.get(f"/api/v1/environments/{name}").status_code in (404, 422)
    outside = ENVIRONMENTS_DIR / "tiny"
    response = api.writer.post("/api/v1/campaigns", json={"goal": "g", "environment": str(outside)})
    problem_of(response, 422)


# submitting and steering campaigns -------------------------------------------------------------
@postgres
def test_submitting_a_goal_records_a_campaign_for_the_cluster(api: Api, store: SqlStore) -> None:
    response = api.writer.post(
        "/api/v1/campaigns",
        json={
            "goal": "lower the loss",
            "environment": "tiny",
            "preset": "strict",
            "strategy": "best-of-n",
            "trials": 7,
            "concurrency": 3,
            "seed": 5,
            "train_seed": 9,
            "confirm_top": 2,
            "confirm_seeds": 4,
            "race": 0,
            "seconds_budget": 600,
            "name": "from-the-api",
            "proposer": "stand-in",
            "analyst": "none",
            "max_dollars": 2.5,
        },
    )
    catalog = api.writer.post("/api/v1/campaigns", json={"goal": "anything", "environment": "tiny"})

    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/v1/campaigns/from-the-api"
    created = response.json()
    assert {k: created[k] for k in ("name", "preset", "strategy", "trial_budget", "concurrency", "seed")} == {
        "name": "from-the-api",
        "preset": "strict",
        "strategy": "best-of-n",
        "trial_budget": 7,
        "concurrency": 3,
        "seed": 5,
    }
    assert created["status"] == "running" and created["distributed"] is True
    assert (created["train_seed"], created["confirm_top"], created["confirm_seeds"], created["race"]) == (
        9,
        2,
        4,
        0,
    )
    assert created["seconds_budget"] == 600
    stored = store.get_campaign("from-the-api")
    assert stored.distributed and stored.goal == "lower the loss"
    assert (stored.agents["proposer"], stored.agents["implementer"], stored.agents["analyst"]) == (
        "stand-in",
        "stand-in",
        None,
    )
    assert stored.agents["budget"] == {"dollars": 2.5, "tokens": None}
    assert catalog.status_code == 201
    by_default = store.get_campaign(catalog.json()["id"])
    assert by_default.agents == {} and by_default.preset == "quick" and by_default.strategy == "evolve"
    assert by_default.name.startswith("tiny-quick-")
    defaults = Settings()  # the server's: confirmation and racing are on unless a submission says otherwise
    assert (by_default.confirm_top, by_default.confirm_seeds, by_default.race) == (
        defaults.confirm_top,
        defaults.confirm_seeds,
        defaults.race,
    )
    assert api.reader.get(catalog.headers["location"]).status_code == 200


@postgres
def test_a_submission_with_bad_input_is_a_422_and_a_taken_name_a_409(api: Api, store: SqlStore) -> None:
    make_campaign(store, "taken")
    cases: dict[str, tuple[dict[str, Any], int, str]] = {
        "unknown environment": ({"environment": "no-such-env"}, 422, "no-such-env"),
        "unknown preset": ({"preset": "huge"}, 422, "huge"),
        "unknown strategy": ({"strategy": "random-walk"}, 422, "random-walk"),
        "no trials": ({"trials": 0}, 422, "trials"),
        "one confirmation seed": ({"confirm_seeds": 1}, 422, "confirm-seeds"),
        "no compute": ({"seconds_budget": 0}, 422, "seconds_budget"),
        "no goal": ({"goal": ""}, 422, "goal"),
        "a model but no proposer": ({"implementer": "stand-in"}, 422, "implementer"),
        "a model without its API key": ({"proposer": "openai:gpt-5"}, 422, "OPENAI_API_KEY"),
        "a model of no provider": ({"proposer": "no-such-provider:model"}, 422, "no-such-provider"),
        "a name that reads as an id": ({"name": "12345"}, 422, "digits"),
        "a name taken": ({"name": "taken"}, 409, "taken"),
        "a field it does not take": ({"status": "finished"}, 422, "status"),
    }

    answers = {
        case: api.writer.post("/api/v1/campaigns", json={"goal": "g", "environment": "tiny"} | change)
        for case, (change, _, _) in cases.items()
    }

    assert {case: r.status_code for case, r in answers.items()} == {case: c[1] for case, c in cases.items()}
    for case, (_, status, words) in cases.items():
        assert words in problem_of(answers[case], status)["detail"], case
    assert [c.name for c in store.list_campaigns()] == ["taken"]


@postgres
def test_pause_resume_and_cancel_move_a_campaign_or_answer_409(api: Api, store: SqlStore) -> None:
    make_campaign(store, "cluster", distributed=True)

    def act(action: str) -> httpx2.Response:
        return api.writer.post(f"/api/v1/campaigns/cluster/{action}")

    steps = [
        ("resume", 409, "running"),
        ("pause", 200, "stopped"),
        ("pause", 409, "stopped"),
        ("resume", 200, "running"),
        ("pause", 200, "stopped"),
        ("cancel", 200, "cancelled"),
        ("cancel", 409, "cancelled"),
        ("resume", 409, "cancelled"),
        ("pause", 409, "cancelled"),
    ]
    for action, status, then in steps:
        response = act(action)
        assert response.status_code == status, (action, response.text)
        if status == 200:
            assert response.json()["status"] == then
        else:
            assert then in problem_of(response, 409)["detail"]
        assert store.get_campaign("cluster").status == then

    finished = make_campaign(store, "finished", distributed=True)
    store.set_campaign_status(finished.id, CampaignStatus.FINISHED)
    for action in ("pause", "resume", "cancel"):
        assert (
            "finished" in problem_of(api.writer.post(f"/api/v1/campaigns/finished/{action}"), 409)["detail"]
        )
    assert store.get_campaign("finished").status is CampaignStatus.FINISHED
    problem_of(api.writer.post("/api/v1/campaigns/missing/pause"), 404)


@postgres
def test_a_local_campaign_is_resumed_where_it_ran_not_through_the_api(api: Api, store: SqlStore) -> None:
    local = make_campaign(store, "on-my-laptop")
    assert api.writer.post("/api/v1/campaigns/on-my-laptop/pause").status_code == 200

    problem = problem_of(api.writer.post("/api/v1/campaigns/on-my-laptop/resume"), 409)

    assert "autoresearch resume on-my-laptop" in problem["detail"]
    assert store.get_campaign(local.id).status is CampaignStatus.STOPPED


@postgres
def test_a_budget_update_changes_limits_but_never_below_what_was_counted(api: Api, store: SqlStore) -> None:
    make_campaign(store, "llm", trials=3, agents=STAND_IN_AGENTS | {"budget": {"dollars": 1.0}})
    make_campaign(store, "catalog", trials=3)

    below = api.writer.patch("/api/v1/campaigns/llm", json={"trials": 2})
    at = api.writer.patch("/api/v1/campaigns/llm", json={"trials": 3})
    raised = api.writer.patch(
        "/api/v1/campaigns/llm",
        json={"trials": 40, "concurrency": 6, "max_dollars": 9.5, "max_tokens": 10**6},
    )
    no_llm = api.writer.patch("/api/v1/campaigns/catalog", json={"max_tokens": 1000})
    zero = api.writer.patch("/api/v1/campaigns/catalog", json={"concurrency": 0})
    unknown = api.writer.patch("/api/v1/campaigns/catalog", json={"status": "running"})

    assert "3 trials" in problem_of(below, 422)["detail"]
    assert at.status_code == 200 and at.json()["trial_budget"] == 3
    assert raised.status_code == 200
    assert (raised.json()["trial_budget"], raised.json()["concurrency"]) == (40, 6)
    assert raised.json()["agents"]["budget"] == {"dollars": 9.5, "tokens": 10**6}
    assert store.get_campaign("llm").agents["budget"] == {"dollars": 9.5, "tokens": 10**6}
    assert "no LLM" in problem_of(no_llm, 422)["detail"]
    problem_of(zero, 422)
    problem_of(unknown, 422)
    assert store.get_campaign("catalog").concurrency == 2

    api.writer.post("/api/v1/campaigns/catalog/cancel")
    problem_of(api.writer.patch("/api/v1/campaigns/catalog", json={"trials": 50}), 409)


# ideas -----------------------------------------------------------------------------------------
@postgres
def test_a_seeded_idea_waits_on_its_parent_for_the_controller(api: Api, store: SqlStore) -> None:
    campaign = make_campaign(store, "catalog", trials=3)

    on_baseline = api.writer.post(
        "/api/v1/campaigns/catalog/ideas",
        json={"hypothesis": "Move y to -1. It should help.", "diff": RECIPE_DIFF},
    )
    on_second = api.writer.post(
        "/api/v1/campaigns/catalog/ideas",
        json={"hypothesis": "y again", "diff": RECIPE_DIFF, "parent": 2, "surface": "hyperparameters"},
    )

    assert on_baseline.status_code == on_second.status_code == 201
    idea = on_baseline.json()
    assert on_baseline.headers["location"] == f"/api/v1/campaigns/catalog/ideas/{idea['id']}"
    assert {k: idea[k] for k in ("title", "origin", "parents", "trial", "diff")} == {
        "title": "Move y to -1",
        "origin": "user",
        "parents": [0],
        "trial": None,
        "diff": RECIPE_DIFF,
    }
    stored = store.get_idea(idea["id"])
    assert stored.origin is IdeaOrigin.USER and stored.campaign_id == campaign.id
    assert stored.parent_trial_ids == (store.get_trial_by_number(campaign.id, 0).id,)
    assert on_second.json()["parents"] == [2] and on_second.json()["surface"] == "hyperparameters"

    listed = api.reader.get("/api/v1/campaigns/catalog/ideas").json()
    assert [i["origin"] for i in listed] == ["baseline", "catalog", "catalog", "user", "user"]
    assert [i["trial"] for i in listed] == [0, 1, 2, None, None]
    assert api.reader.get(f"/api/v1/campaigns/catalog/ideas/{idea['id']}").json() == idea
    problem_of(api.reader.get("/api/v1/campaigns/catalog/ideas/99999"), 404)


@postgres
def test_an_idea_needs_a_diff_unless_the_campaign_has_an_llm_implementer(api: Api, store: SqlStore) -> None:
    make_campaign(store, "catalog", trials=1)
    make_campaign(store, "llm", trials=1, agents=STAND_IN_AGENTS)

    without = api.writer.post("/api/v1/campaigns/catalog/ideas", json={"hypothesis": "use rmsnorm"})
    by_llm = api.writer.post("/api/v1/campaigns/llm/ideas", json={"hypothesis": "use rmsnorm"})

    assert "diff" in problem_of(without, 422)["detail"]
    assert by_llm.status_code == 201 and by_llm.json()["diff"] == ""
    assert [i.hypothesis for i in store.list_ideas(store.get_campaign("catalog").id)] == ["idea 0: try it"]


@postgres
def test_a_seeded_idea_with_bad_input_is_refused(api: Api, store: SqlStore) -> None:
    campaign = make_campaign(store, "catalog", trials=2)
    store.set_trial_flags(store.get_trial_by_number(campaign.id, 1).id, vetoed=True)
    cases: dict[str, tuple[dict[str, Any], int, str]] = {
        "not a diff": ({"diff": "not a diff"}, 422, "diff"),
        "a diff of the evaluator": ({"diff": EVALUATOR_DIFF}, 422, "evaluate.py"),
        "no such parent": ({"diff": RECIPE_DIFF, "parent": 7}, 422, "7"),
        "a vetoed parent": ({"diff": RECIPE_DIFF, "parent": 1}, 409, "vetoed"),
        "a field it does not take": ({"diff": RECIPE_DIFF, "parents": [0]}, 422, "parents"),
        "no hypothesis": ({"hypothesis": "", "diff": RECIPE_DIFF}, 422, "hypothesis"),
    }

    answers = {
        case: api.writer.post("/api/v1/campaigns/catalog/ideas", json={"hypothesis": "h"} | body)
        for case, (body, _, _) in cases.items()
    }

    assert {case: r.status_code for case, r in answers.items()} == {case: c[1] for case, c in cases.items()}
    for case, (_, status, words) in cases.items():
        assert words in problem_of(answers[case], status)["detail"], case
    assert len(store.list_ideas(campaign.id)) == 2


@postgres
def test_ideas_go_to_no_ended_campaign_nor_to_one_without_a_baseline_yet(api: Api, store: SqlStore) -> None:
    fresh = make_campaign(store, "fresh")
    ended = make_campaign(store, "ended", trials=1)
    store.set_campaign_status(ended.id, CampaignStatus.FINISHED)
    body = {"hypothesis": "h", "diff": RECIPE_DIFF}

    assert (
        "baseline" in problem_of(api.writer.post("/api/v1/campaigns/fresh/ideas", json=body), 409)["detail"]
    )
    assert (
        "finished" in problem_of(api.writer.post("/api/v1/campaigns/ended/ideas", json=body), 409)["detail"]
    )
    assert store.list_ideas(fresh.id) == []


# trials ----------------------------------------------------------------------------------------
def _walk(api: Api, query: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every item of every page, and how many pages it took."""
    items: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        params = f"{query}&limit={limit}" + (f"&after={cursor}" if cursor else "")
        response = api.reader.get(f"/api/v1/campaigns/big/trials?{params}")
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            return items, pages
        assert len(page["items"]) == limit


@postgres
def test_pages_of_trials_hold_every_trial_exactly_once_in_every_order(api: Api, store: SqlStore) -> None:
    _, trials = grow(store, "big", 240)
    scored = [t for t in trials if t.score is not None]
    parents = {t.id: t.number for t in trials}

    by_number, pages = _walk(api, "sort=number", 37)
    backwards, _ = _walk(api, "sort=-number", 50)
    by_score, _ = _walk(api, "sort=score", 23)
    by_score_desc, _ = _walk(api, "sort=-score", 200)

    assert [t["number"] for t in by_number] == list(range(240)) and pages == 7
    assert [t["number"] for t in backwards] == list(range(239, -1, -1))
    assert [(t["score"], t["number"]) for t in by_score] == sorted((t.score, t.number) for t in scored)
    assert [t["score"] for t in by_score_desc] == sorted((t.score for t in scored), reverse=True)
    assert len({t["number"] for t in by_score_desc}) == len(scored)
    assert len({t["score"] for t in by_score}) < len(scored) / 4  # ties, across page boundaries
    first = by_number[5]
    trial = trials[5]
    assert first == {
        "number": 5,
        "parent": parents[trial.parent_id] if trial.parent_id else None,
        "status": str(trial.status),
        "label": trial.label,
        "score": trial.score,
        "pinned": False,
        "vetoed": False,
        "seed": 0,
        "role": "search",
        "worker": "",
        "duration_s": None,
        "created_at": first["created_at"],
        "started_at": first["started_at"],
        "finished_at": first["finished_at"],
    }
    assert all(t["parent"] == parents.get(trials[t["number"]].parent_id) for t in by_number)


@postgres
def test_trials_are_filtered_by_status_label_and_score(api: Api, store: SqlStore) -> None:
    _, trials = grow(store, "big", 120, seed=1)

    def numbers(query: str) -> list[int]:
        items, _ = _walk(api, query, 30)
        return [t["number"] for t in items]

    def expected(keep: Callable[[Trial], bool]) -> list[int]:
        return [t.number for t in trials if keep(t)]

    crash_or_oom = expected(lambda t: t.label in (FailureLabel.CRASH, FailureLabel.OOM))
    assert numbers("status=failed") == crash_or_oom and crash_or_oom
    assert numbers("label=oom") == expected(lambda t: t.label is FailureLabel.OOM)
    assert numbers("label=oom&label=crash") == crash_or_oom
    assert numbers("status=pending&status=running") == [116, 117, 118, 119]
    assert numbers("min_score=5&max_score=9") == expected(lambda t: t.score is not None and 5 <= t.score <= 9)
    assert numbers("status=succeeded&max_score=3") == expected(lambda t: t.score is not None and t.score <= 3)
    assert numbers("status=interrupted") == []


@postgres
def test_a_bad_page_request_is_a_422_problem(api: Api, store: SqlStore) -> None:
    make_campaign(store, "speedrun", trials=2)
    cases = {
        "limit=201": "limit",
        "limit=0": "limit",
        "after=bm90LWEtY3Vyc29y": "cursor",  # base64 of not-a-cursor
        "after=%%%": "cursor",
        "sort=best": "sort",
        "status=exploded": "status",
        "min_score=nan": "min_score",
    }

    answers = {query: api.reader.get(f"/api/v1/campaigns/speedrun/trials?{query}") for query in cases}

    assert {query: r.status_code for query, r in answers.items()} == dict.fromkeys(cases, 422)
    for query, words in cases.items():
        assert words in problem_of(answers[query], 422)["detail"], query


@postgres
def test_a_trial_in_full_has_its_idea_diff_results_patches_and_llm_calls(api: Api, store: SqlStore) -> None:
    campaign = make_campaign(store, "speedrun", trials=2, agents=STAND_IN_AGENTS)
    parent = store.get_trial_by_number(campaign.id, 1)
    idea = store.add_idea(
        campaign.id,
        hypothesis="Swap the optimizer: faster.",
        origin=IdeaOrigin.LLM,
        parent_trial_ids=(parent.id,),
    )
    trial = store.add_trial(campaign.id, idea_id=idea.id, parent_id=parent.id, seed=3, code_diff=RECIPE_DIFF)
    for attempt, (applied, error) in enumerate([(False, "hunk 1 does not apply"), (True, "")], 1):
        store.add_patch(
            trial.id, attempt=attempt, diff=RECIPE_DIFF, applied=applied, error=error, files=["recipe.py"]
        )
    store.add_llm_call(
        campaign.id,
        role=Role.IMPLEMENTER,
        model="stand-in",
        template="implementer@v1",
        prompt={"system": "A PROMPT NOT TO SHOW", "messages": []},
        response="A RESPONSE NOT TO SHOW",
        input_tokens=900,
        output_tokens=100,
        idea_id=idea.id,
    )
    store.claim_trial(trial.id, worker="gpu-host:42")
    store.finish_trial(
        trial.id,
        TrialResult.scored(
            4.5,
            metrics={"loss": 4.5, "val": float("inf")},
            curve=({"step": 1, "loss": 6.0}, {"step": 2, "loss": 4.5}),
            log_tail="step 2 loss 4.5\n",
            code_hash="ab" * 32,
            duration_s=1.5,
        ),
    )

    response = api.reader.get("/api/v1/campaigns/speedrun/trials/2")

    assert response.status_code == 200, response.text
    full = response.json()
    assert (full["number"], full["parent"], full["status"], full["score"], full["seed"]) == (
        2,
        1,
        "succeeded",
        4.5,
        3,
    )
    assert full["worker"] == "gpu-host:42" and full["duration_s"] == 1.5
    assert full["metrics"] == {"loss": 4.5, "val": None}  # JSON has no infinity
    assert full["curve"] == [{"step": 1, "loss": 6.0}, {"step": 2, "loss": 4.5}]
    assert full["diff"] == RECIPE_DIFF and full["log_tail"] == "step 2 loss 4.5\n"
    assert full["bundle"] == "/api/v1/campaigns/speedrun/trials/2/bundle"
    assert full["lineage"] == [0, 1, 2] and full["retry_of"] is None
    assert (full["idea"]["title"], full["idea"]["origin"], full["idea"]["parents"]) == (
        "Swap the optimizer",
        "llm",
        [1],
    )
    assert [(p["attempt"], p["applied"], p["accepted"], p["error"]) for p in full["patches"]] == [
        (1, False, False, "hunk 1 does not apply"),
        (2, True, True, ""),
    ]
    assert [(c["role"], c["usage"]["tokens"]) for c in full["llm_calls"]] == [("implementer", 1000)]
    assert "NOT TO SHOW" not in response.text
    problem_of(api.reader.get("/api/v1/campaigns/speedrun/trials/99"), 404)
    problem_of(api.reader.get("/api/v1/campaigns/speedrun/trials/-1"), 422)


@postgres
def test_pins_and_vetoes_are_set_cleared_and_never_both(api: Api, store: SqlStore) -> None:
    campaign = make_campaign(store, "speedrun", trials=3)
    base = "/api/v1/campaigns/speedrun/trials"

    pinned = api.writer.post(f"{base}/1/pin")
    veto_pinned = api.writer.post(f"{base}/1/veto")
    vetoed = api.writer.post(f"{base}/2/veto")
    pin_vetoed = api.writer.post(f"{base}/2/pin")

    assert pinned.status_code == 200 and (pinned.json()["pinned"], pinned.json()["parent"]) == (True, 0)
    assert "unpin" in problem_of(veto_pinned, 409)["detail"]
    assert vetoed.status_code == 200 and vetoed.json()["vetoed"] is True
    assert "unveto" in problem_of(pin_vetoed, 409)["detail"]
    flags = {t.number: (t.pinned, t.vetoed) for t in store.list_trials(campaign.id)}
    assert flags == {0: (False, False), 1: (True, False), 2: (False, True)}

    assert api.writer.post(f"{base}/1/unpin").json()["pinned"] is False
    assert api.writer.post(f"{base}/2/unveto").json()["vetoed"] is False
    assert {(t.pinned, t.vetoed) for t in store.list_trials(campaign.id)} == {(False, False)}
    problem_of(api.writer.post(f"{base}/9/pin"), 404)


# lineage ---------------------------------------------------------------------------------------
@postgres
def test_the_lineage_graph_has_every_trial_as_a_node_and_every_parent_as_an_edge(
    api: Api, store: SqlStore
) -> None:
    campaign, trials = grow(store, "big", 60, seed=2)
    store.set_trial_flags(trials[3].id, pinned=True)
    number_of = {t.id: t.number for t in trials}

    response = api.reader.get("/api/v1/campaigns/big/lineage")

    assert response.status_code == 200
    graph = response.json()
    assert [n["number"] for n in graph["nodes"]] == list(range(60))
    assert graph["edges"] == [[number_of[t.parent_id], t.number] for t in trials if t.parent_id is not None]
    assert graph["nodes"][0] | {"status": None} == {
        "number": 0,
        "parent": None,
        "status": None,
        "label": None,
        "score": trials[0].score,
        "title": "baseline",
        "origin": "baseline",
        "pinned": False,
        "vetoed": False,
        "retry_of": None,
        "role": "search",
    }
    node = graph["nodes"][3]
    assert (node["title"], node["origin"], node["pinned"]) == ("idea 3", "catalog", True)
    assert [n["status"] for n in graph["nodes"]] == [str(t.status) for t in trials]
    assert [n["label"] for n in graph["nodes"]] == [t.label for t in trials]
    assert sum(n["parent"] is None for n in graph["nodes"]) == 1
    assert all(parent < child for parent, child in graph["edges"])
    assert api.reader.get(f"/api/v1/campaigns/{campaign.id}/lineage").json() == graph
    assert LineagePublic.model_validate(graph).model_dump(mode="json") == graph  # what the schema declares


def _statements(api: Api, path: str) -> int:
    """How many SQL statements the server runs to answer `path`."""
    count = 0

    def counted(*args: Any) -> None:
        nonlocal count
        count += 1

    engine = api.app.state.store.engine
    event.listen(engine, "before_cursor_execute", counted)
    try:
        assert api.reader.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count


@postgres
def test_the_lineage_costs_the_same_few_queries_for_3_trials_or_150(api: Api, store: SqlStore) -> None:
    grow(store, "small", 3)
    grow(store, "large", 150, seed=3)

    small = _statements(api, "/api/v1/campaigns/small/lineage")
    large = _statements(api, "/api/v1/campaigns/large/lineage")

    assert small == large <= 3  # token, campaign, the lineage


@postgres
def test_a_page_of_trials_costs_a_fixed_few_queries_whatever_its_parents(api: Api, store: SqlStore) -> None:
    grow(store, "big", 150, seed=4)
    page = "/api/v1/campaigns/big/trials?sort=-number&limit=50"

    by_number = _statements(api, page)
    by_score = _statements(api, "/api/v1/campaigns/big/trials?sort=score&limit=50")
    ancestors = _statements(api, "/api/v1/campaigns/big/trials/149/ancestors")

    # token, campaign, the trials with their parents' numbers; then the campaign's id is known
    assert (by_number, by_score, ancestors) == (3, 2, 2)


@postgres
def test_ancestors_run_from_the_baseline_down_to_the_parent(api: Api, store: SqlStore) -> None:
    campaign = make_campaign(store, "speedrun", trials=2)
    one = store.get_trial_by_number(campaign.id, 1)
    two = finish(store, add(store, campaign, one, hypothesis="two"), TrialResult.scored(3.0))
    add(store, campaign, two, hypothesis="three")

    chain = api.reader.get("/api/v1/campaigns/speedrun/trials/3/ancestors")
    of_baseline = api.reader.get("/api/v1/campaigns/speedrun/trials/0/ancestors")

    assert chain.status_code == 200
    assert [(t["number"], t["parent"]) for t in chain.json()] == [(0, None), (1, 0), (2, 1)]
    assert of_baseline.json() == []
    problem_of(api.reader.get("/api/v1/campaigns/speedrun/trials/8/ancestors"), 404)


# artifacts -------------------------------------------------------------------------------------
@postgres
def test_a_trial_bundle_downloads_the_code_it_ran(api: Api, store: SqlStore, settings: Settings) -> None:
    campaign = make_campaign(store, "speedrun", trials=1)
    code = {"recipe.py": "x = 3.0\ny = -1.0\nparams = 10\n", "train.py": "print('train')\n"}
    digest = code_hash(code)
    LocalArtifacts(Path(settings.artifacts_url)).put(bundle_key(digest), code_bundle(code))
    finish(store, add(store, campaign, None, hypothesis="ran"), TrialResult.scored(1.0, code_hash=digest))

    response = api.reader.get("/api/v1/campaigns/speedrun/trials/1/bundle")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/gzip"
    assert response.headers["content-disposition"] == 'attachment; filename="trial-1.tar.gz"'
    assert response.headers["etag"] == f'"{digest}"'
    assert read_bundle(response.content) == code


@postgres
def test_a_missing_bundle_is_a_404_and_no_stored_hash_reaches_outside_the_store(
    api: Api, store: SqlStore, settings: Settings, tmp_path: Path
) -> None:
    campaign = make_campaign(store, "speedrun", trials=1)  # trial 0 never stored a code hash
    root = Path(settings.artifacts_url)
    (root / "code").mkdir(parents=True)
    (root / "evil.tar.gz").write_bytes(b"inside the store, outside code/")
    (tmp_path / "outside.tar.gz").write_bytes(b"outside the store")
    for stored_hash in ("cd" * 32, "../evil", "../../outside", "/etc/passwd"):
        finish(
            store,
            add(store, campaign, None, hypothesis=stored_hash),
            TrialResult.scored(1.0, code_hash=stored_hash),
        )

    responses = [api.reader.get(f"/api/v1/campaigns/speedrun/trials/{n}/bundle") for n in range(5)]

    assert [r.status_code for r in responses] == [404] * 5
    assert "never ran" in problem_of(responses[0], 404)["detail"]
    assert "not in the artifact store" in problem_of(responses[1], 404)["detail"]
    assert all(b"outside" not in r.content for r in responses)
    problem_of(api.reader.get("/api/v1/campaigns/speedrun/trials/..%2F..%2Fetc/bundle"), 404)


# events ----------------------------------------------------------------------------------------
class EventReader:
    """Reads an event stream in a thread: each line with the moment it arrived, until `close`."""

    def __init__(self, api: Api, path: str, headers: dict[str, str] | None = None) -> None:
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.status = 0
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.client = httpx2.Client(base_url=api.url, headers=dict(api.reader.headers) | (headers or {}))
        self.thread = threading.Thread(target=self._read, args=(path,), daemon=True)
        self.thread.start()
        assert self.connected.wait(5), "the event stream did not answer"

    def _read(self, path: str) -> None:
        with self.client.stream("GET", path) as response:
            self.status = response.status_code
            self.headers = response.headers
            self.connected.set()
            for line in response.iter_lines():  # heartbeats keep this loop turning
                self.lines.put((time.monotonic(), line))
                if self.stop.is_set():
                    return

    def events(self, count: int, timeout: float = 5.0) -> list[tuple[float, dict[str, str]]]:
        """The next `count` events: when each arrived, and its fields (comments and retry skipped)."""
        found: list[tuple[float, dict[str, str]]] = []
        fields: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while len(found) < count:
            arrived, line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
            elif "event" in fields:
                found.append((arrived, fields))
                fields = {}
            else:
                fields = {}
        return found

    def comments(self, timeout: float) -> list[str]:
        deadline, seen = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            with suppress(queue.Empty):
                seen.append(self.lines.get(timeout=0.05)[1])
        return [line for line in seen if line.startswith(":")]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.client.close()


@contextmanager
def reading(api: Api, path: str, headers: dict[str, str] | None = None) -> Iterator[EventReader]:
    reader = EventReader(api, path, headers)
    try:
        yield reader
    finally:
        reader.close()


@postgres
def test_a_state_change_reaches_the_event_stream_within_a_second(api: Api, store: SqlStore) -> None:
    campaign = make_campaign(store, "speedrun", trials=2)
    trial = add(store, campaign, None, hypothesis="watched")
    store.claim_trial(trial.id)
    last = store.trial_events(campaign.id)[-1].id

    with reading(api, f"/api/v1/campaigns/speedrun/events?after={last}") as stream:
        assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
        time.sleep(0.3)  # the stream is idle, between two reads of the store
        before = time.monotonic()
        store.finish_trial(trial.id, TrialResult.scored(2.0))
        [(arrived, message)] = stream.events(1)

    latency = arrived - before
    print(f"finish_trial -> event on the stream: {latency * 1000:.0f} ms")
    assert message["event"] == "trial" and int(message["id"]) > last
    data = json.loads(message["data"])
    assert (data["number"], data["status"]) == (2, "succeeded")
    finished_at = store.get_trial(trial.id).finished_at
    assert (
        finished_at is not None
        and abs((datetime.fromisoformat(data["at"]) - finished_at).total_seconds()) < 1
    )
    assert latency < 1.0


@postgres
def test_the_event_stream_replays_resumes_after_last_event_id_and_sends_heartbeats(
    api: Api, store: SqlStore
) -> None:
    campaign = make_campaign(store, "speedrun", trials=3)
    stored = store.trial_events(campaign.id)
    assert len(stored) == 9  # pending, running, succeeded for each trial

    with reading(api, "/api/v1/campaigns/speedrun/events") as stream:
        replayed = [m for _, m in stream.events(9)]
        heartbeats = stream.comments(0.7)
    with reading(
        api, "/api/v1/campaigns/speedrun/events?after=0", {"Last-Event-ID": str(stored[4].id)}
    ) as stream:
        resumed = [m for _, m in stream.events(4)]

    assert [int(m["id"]) for m in replayed] == [e.id for e in stored]
    assert [json.loads(m["data"])["status"] for m in replayed[:3]] == ["pending", "running", "succeeded"]
    assert [int(m["id"]) for m in resumed] == [e.id for e in stored[5:]]
    assert len(heartbeats) >= 2  # every 0.2 s here
    with reading(api, "/api/v1/campaigns/missing/events") as missing:
        assert missing.status == 404
    with api.anon.stream("GET", "/api/v1/campaigns/speedrun/events") as anonymous:
        assert anonymous.status_code == 401


@postgres
def test_the_event_stream_ends_when_the_client_disconnects(api: Api, store: SqlStore) -> None:
    make_campaign(store, "speedrun", trials=1)

    def open_streams_become(count: int) -> bool:
        deadline = time.monotonic() + 3
        while api.app.state.event_streams != count and time.monotonic() < deadline:
            time.sleep(0.02)
        return bool(api.app.state.event_streams == count)

    with reading(api, "/api/v1/campaigns/speedrun/events"), reading(api, "/api/v1/campaigns/speedrun/events"):
        assert open_streams_become(2)
    assert open_streams_become(0)


# the document ----------------------------------------------------------------------------------
@postgres
def test_the_openapi_document_describes_every_route_its_auth_and_its_problems(api: Api) -> None:
    response = api.anon.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    text = json.dumps(document)
    schemas = document["components"]["schemas"]

    missing = {ref for ref in re.findall(r'"#/components/schemas/([^"]+)"', text) if ref not in schemas}
    assert missing == set()
    bearer = document["components"]["securitySchemes"]["HTTPBearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            statuses = set(operation["responses"])
            assert any(s.startswith("2") for s in statuses), where
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    assert answer["content"] == {
                        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, where
            if path == "/api/v1/health":
                assert "security" not in operation
                continue
            assert operation["security"] == [{"HTTPBearer": []}], where
            assert "401" in statuses, where
            if method != "get" or path.startswith("/api/v1/tokens"):
                assert "403" in statuses, where
            if "{" in path:
                assert "404" in statuses and "422" in statuses, where


# SQLite ----------------------------------------------------------------------------------------
def test_the_embedded_sqlite_database_is_served_too(tmp_path: Path, sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    try:
        make_campaign(store, "local", trials=3)
        secrets = issue_tokens(store)
        settings = Settings(
            data_dir=tmp_path / "data", database_url=sqlite_url, environments_path=str(ENVIRONMENTS_DIR)
        )
        with running_api(create_app(settings, ApiSettings(events_heartbeat_s=0.2)), secrets) as api:
            detail = api.reader.get("/api/v1/campaigns/local").json()
            lineage = api.reader.get("/api/v1/campaigns/local/lineage").json()
            paused = api.writer.post("/api/v1/campaigns/local/pause")
            with reading(api, "/api/v1/campaigns/local/events") as stream:
                first = stream.events(1)
    finally:
        store.close()

    assert detail["counts"]["succeeded"] == 3 and detail["best"]["number"] == 2
    assert lineage["edges"] == [[0, 1], [0, 2]]
    assert paused.json()["status"] == "stopped"
    assert json.loads(first[0][1]["data"])["status"] == "pending"


# the CLI against the API -----------------------------------------------------------------------
def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoresearch", *args], env=env, capture_output=True, text=True, timeout=120
    )


@postgres
def test_the_cli_reads_through_the_api_what_it_reads_from_the_database(
    api: Api, store: SqlStore, settings: Settings, tmp_path: Path
) -> None:
    grow(store, "remote", 12, seed=5)
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")}
    base |= {"AUTORESEARCH_ENVIRONMENTS_PATH": str(ENVIRONMENTS_DIR), "COLUMNS": "200"}
    local = base | {"AUTORESEARCH_DATABASE_URL": settings.resolved_database_url}
    # The remote side has no database of its own to read: an empty one, so nothing can come from it.
    remote = base | {
        "AUTORESEARCH_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "AUTORESEARCH_API_TOKEN": api.secrets[Scope.READ],
    }
    for args in (["campaigns"], ["show", "remote", "--top", "5"], ["trial", "remote:3"]):
        here, there = _cli(local, *args, "--json"), _cli(remote, *args, "--json", "--api", api.url)
        assert here.returncode == there.returncode == 0, there.stderr
        assert json.loads(there.stdout) == json.loads(here.stdout)
        assert _cli(remote, *args, "--api", api.url).stdout == _cli(local, *args).stdout  # same tables
    refused = _cli(remote | {"AUTORESEARCH_API_TOKEN": "ar_wrong"}, "campaigns", "--api", api.url)
    assert refused.returncode == 1 and "refused" in refused.stderr and "Traceback" not in refused.stderr


@postgres
def test_run_with_api_submits_to_the_cluster_and_follows_until_the_campaign_ends(
    api: Api, store: SqlStore, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")}
    env |= {
        "AUTORESEARCH_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "AUTORESEARCH_API_TOKEN": api.secrets[Scope.WRITE],
        "COLUMNS": "200",
    }
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoresearch",
            "run",
            "tiny",
            "--trials",
            "2",
            "--name",
            "sent",
            "--api",
            api.url,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(c.name == "sent" for c in store.list_campaigns()):
        assert time.monotonic() < deadline and follower.poll() is None, follower.communicate()
        time.sleep(0.2)
    campaign = store.get_campaign("sent")
    assert campaign.distributed and campaign.trial_budget == 2
    # No controller runs here: end it as one would, and the follower prints the report and exits.
    store.move_campaign(campaign.id, sources=(CampaignStatus.RUNNING,), target=CampaignStatus.FINISHED)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert "campaign sent submitted" in out and "sent (tiny/quick, evolve) finished" in out
    assert _cli(env, "run", "tiny", "--gpus", "0", "--api", api.url).returncode == 1  # local-only option


@postgres
def test_gpu_hours_are_run_time_times_the_gpus_the_preset_asks_for(api: Api, store: SqlStore) -> None:
    quarter = store.create_campaign(
        name="quarter",
        environment="tiny",
        preset="quarter_gpu",
        strategy="evolve",
        goal="g",
        trial_budget=3,
        concurrency=1,
        seed=0,
    )
    finish(store, add(store, quarter, None, hypothesis="a"), TrialResult.scored(1.0, duration_s=3600.0))
    failed = TrialResult.failed(FailureLabel.CRASH, "boom", duration_s=1800.0)  # a crash used its GPU too
    finish(store, add(store, quarter, None, hypothesis="b"), failed)
    cpu = make_campaign(store, "on-cpu", trials=2)
    gone = store.create_campaign(
        name="gone",
        environment="no-such-env",
        preset="quick",
        strategy="evolve",
        goal="g",
        trial_budget=1,
        concurrency=1,
        seed=0,
    )
    hours = {
        c.name: api.reader.get(f"/api/v1/campaigns/{c.name}").json()["gpu_hours"]
        for c in (quarter, cpu, gone)
    }
    assert hours == {"quarter": 0.375, "on-cpu": 0.0, "gone": None}  # (1 h + 0.5 h) x 0.25 GPU
