"""A remote autoresearch API, for the CLI's `--api URL`: JSON in and out, problem documents turned into
the errors the CLI prints on one line, and the event stream read line by line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx

from autoresearch.errors import ConfigError, NotFound


class ApiClient:
    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=timeout_s)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> Any:
        return self._json(self._send("GET", path, params=params))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(self._send("POST", path, json={k: v for k, v in body.items() if v is not None}))

    def events(self, path: str) -> Iterator[dict[str, Any]]:
        """Each `data:` of a Server-Sent Events stream, parsed, until the server ends it."""
        try:
            with self.http.stream("GET", path, timeout=httpx.Timeout(30.0, read=None)) as response:
                if response.status_code >= 400:
                    response.read()
                    self._json(response)
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        yield json.loads(line[5:])
        except httpx.TransportError as exc:
            raise ConfigError(f"lost the API at {self.url}: {exc}") from exc

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise ConfigError(f"cannot reach the API at {self.url}: {exc}") from exc

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code < 400:
            return response.json()
        try:
            problem = response.json()
            detail = problem.get("detail") or problem.get("title") or response.reason_phrase
        except ValueError:
            detail = response.text[:200] or response.reason_phrase
        if response.status_code == 404:
            raise NotFound(str(detail))
        if response.status_code in (401, 403):
            raise ConfigError(f"the API at {self.url} refused: {detail} (token: AUTORESEARCH_API_TOKEN)")
        raise ConfigError(f"the API at {self.url} answered {response.status_code}: {detail}")
