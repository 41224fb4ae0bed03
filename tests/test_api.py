"""The HTTP API, served by a real uvicorn on loopback and called over real HTTP.

On SQLite, and once end to end on PostgreSQL: the store contract already covers the backends.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI

from autoresearch import __version__
from autoresearch.adapters.db import SqlStore, open_store
from autoresearch.adapters.db.store import safe_url
from autoresearch.api import create_app
from autoresearch.domain.model import Campaign, IdeaOrigin
from autoresearch.settings import Settings


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run `app` under uvicorn in a thread on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound here, so no other process can take the port in between
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
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


@contextmanager
def api_client(database_url: str, data_dir: Path) -> Iterator[httpx2.Client]:
    settings = Settings(data_dir=data_dir, database_url=database_url)
    with serving(create_app(settings)) as base_url, httpx2.Client(base_url=base_url, timeout=10) as client:
        yield client


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite for this module's `store` and `api`; see the PostgreSQL test at the end."""
    return sqlite_url


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[httpx2.Client]:
    """A client of the API served over `database_url` (empty until the server migrates it)."""
    with api_client(database_url, tmp_path / "data") as client:
        yield client


def make_campaign(store: SqlStore, name: str, trials: int = 0) -> Campaign:
    campaign = store.create_campaign(
        name=name,
        environment="tiny-lm",
        preset="cpu",
        strategy="evolve",
        goal="lower val_loss",
        trial_budget=10,
        concurrency=2,
        seed=0,
    )
    for _ in range(trials):
        idea = store.add_idea(campaign.id, hypothesis="use rmsnorm", origin=IdeaOrigin.CATALOG)
        store.add_trial(campaign.id, idea_id=idea.id, parent_id=None, seed=0)
    return campaign


def test_health_names_the_version_and_the_database_without_its_password(
    api: httpx2.Client, database_url: str
) -> None:
    response = api.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__, "database": safe_url(database_url)}


def test_the_server_migrates_a_fresh_database_when_it_starts(api: httpx2.Client) -> None:
    response = api.get("/api/v1/campaigns")  # nothing but the server has opened this database
    assert response.status_code == 200
    assert response.json() == []


def test_campaigns_are_listed_newest_first(api: httpx2.Client, store: SqlStore) -> None:
    older = make_campaign(store, "older")
    newer = make_campaign(store, "newer")

    response = api.get("/api/v1/campaigns")

    assert response.status_code == 200
    listed = response.json()
    assert [c["id"] for c in listed] == [newer.id, older.id]
    assert listed[0] == {
        "id": newer.id,
        "name": "newer",
        "environment": "tiny-lm",
        "preset": "cpu",
        "strategy": "evolve",
        "goal": "lower val_loss",
        "status": "running",
        "trial_budget": 10,
        "concurrency": 2,
        "created_at": listed[0]["created_at"],
    }
    assert datetime.fromisoformat(listed[0]["created_at"]) == newer.created_at


def test_a_campaign_by_name_or_id_carries_its_trial_counts(api: httpx2.Client, store: SqlStore) -> None:
    campaign = make_campaign(store, "speedrun", trials=3)
    first = store.list_trials(campaign.id)[0]
    assert store.claim_trial(first.id) is not None

    by_name = api.get("/api/v1/campaigns/speedrun")
    by_id = api.get(f"/api/v1/campaigns/{campaign.id}")

    assert by_name.status_code == by_id.status_code == 200
    assert by_name.json() == by_id.json()
    assert by_name.json()["name"] == "speedrun"
    assert by_name.json()["counts"] == {
        "pending": 2,
        "running": 1,
        "succeeded": 0,
        "failed": 0,
        "interrupted": 0,
    }


def test_an_unknown_campaign_is_a_404_problem_document(api: httpx2.Client, store: SqlStore) -> None:
    make_campaign(store, "speedrun")

    response = api.get("/api/v1/campaigns/no-such-campaign")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": problem["detail"],
    }
    assert "no-such-campaign" in problem["detail"]


def test_an_unknown_route_is_a_problem_document_too(api: httpx2.Client) -> None:
    response = api.get("/api/v1/no-such-route")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


@pytest.mark.postgres
def test_a_campaign_is_served_from_postgresql(tmp_path: Path, postgres_url: str) -> None:
    with api_client(postgres_url, tmp_path / "data") as api:
        store = open_store(postgres_url)
        try:
            campaign = make_campaign(store, "speedrun", trials=2)
        finally:
            store.close()

        health = api.get("/api/v1/health").json()
        listed = api.get("/api/v1/campaigns").json()
        one = api.get("/api/v1/campaigns/speedrun").json()
        missing = api.get("/api/v1/campaigns/no-such-campaign")

    assert health["database"] == safe_url(postgres_url)
    assert health["database"].startswith("postgresql+psycopg://")
    assert [c["id"] for c in listed] == [campaign.id]
    assert one["counts"]["pending"] == 2
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
