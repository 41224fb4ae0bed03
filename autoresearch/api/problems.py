"""Every error the API answers is an RFC 9457 problem document (`application/problem+json`).

A client reads one shape for a missing campaign, a bad cursor, a state conflict, a missing token and
an unknown route alike. The library's own exceptions map onto status codes here, so routes raise
`NotFound`, `Conflict` or `ConfigError` and never build responses for errors themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from autoresearch.errors import (
    AutoresearchError,
    ConfigError,
    Conflict,
    NotFound,
    PatchError,
    StoreError,
    describe_invalid,
)

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One invalid part of a request: where it is (`["query", "limit"]`) and what is wrong with it."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"  # no more semantics than the status code itself
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None  # on a 422 for a malformed request: every invalid part


def problem(
    status: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    errors: list[FieldError] | None = None,
) -> JSONResponse:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, headers=headers, media_type=PROBLEM_JSON
    )


# Most specific first: the first class an error is an instance of decides.
_STATUS_OF: tuple[tuple[type[AutoresearchError], HTTPStatus], ...] = (
    (NotFound, HTTPStatus.NOT_FOUND),
    (Conflict, HTTPStatus.CONFLICT),
    (ConfigError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (PatchError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (StoreError, HTTPStatus.SERVICE_UNAVAILABLE),
)

_DESCRIPTIONS = {
    401: "No token, or one that is unknown or revoked.",
    403: "The token's scope is too low for this route.",
    404: "No such resource.",
    409: "The resource is in a state that does not allow this.",
    413: "The request body is over the server's cap (AUTORESEARCH_API_MAX_BODY_BYTES).",
    422: "The request is malformed or names something that does not exist.",
    503: "The database cannot be reached.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entry of a route that can answer these problems."""
    return {status: {"description": _DESCRIPTIONS[status]} for status in statuses}


def content(media_type: str, description: str, schema: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entry of a route whose 200 is not JSON."""
    return {200: {"description": description, "content": {media_type: {"schema": schema}}}}


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    status = next((s for kind, s in _STATUS_OF if isinstance(exc, kind)), HTTPStatus.BAD_REQUEST)
    if status is HTTPStatus.SERVICE_UNAVAILABLE:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return problem(status.value, str(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (an unknown route, a wrong method) and our 401s and 403s."""
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail), exc.headers)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [FieldError(loc=list(e["loc"]), msg=e["msg"], type=e["type"]) for e in exc.errors()]
    detail = "; ".join(_described(e) for e in exc.errors()) or "invalid request"
    return problem(HTTPStatus.UNPROCESSABLE_ENTITY.value, detail, errors=errors)


def _described(error: Mapping[str, Any]) -> str:
    # A header's value is never echoed (it may be a token), nor a string refused for its length.
    if error["loc"][:1] == ("header",) or error["type"] == "string_too_long":
        return f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
    return describe_invalid(error)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette logs the traceback after this answer is sent; the client learns nothing internal.
    return problem(HTTPStatus.INTERNAL_SERVER_ERROR.value, "internal error; the server log has the details")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AutoresearchError, _library_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)


def document_problems(openapi: dict[str, Any]) -> dict[str, Any]:
    """Make the generated OpenAPI document say what the API does: every error response is a Problem
    in `application/problem+json` (FastAPI would describe its own validation-error shape)."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            if "requestBody" in operation:  # every body passes the cap (see body_cap)
                operation.setdefault("responses", {}).setdefault("413", {})
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = content
                    response.setdefault("description", _DESCRIPTIONS.get(int(status), "A problem."))
    return openapi
