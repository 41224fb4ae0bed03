"""Bearer tokens and scopes: read < write < admin.

Reads need a read token unless the operator allows anonymous reads; writes always need a write token,
and token administration an admin one. A token is checked once per request, and never logged or echoed.
The dashboard's pages call the API with the token their session cookie holds instead of a header; a
write made that way must carry the page's CSRF token too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from autoresearch.api.dependencies import ApiSettingsDep, StoreDep
from autoresearch.dashboard.session import require_csrf, session_token
from autoresearch.domain.model import ApiToken, Scope
from autoresearch.services.auth import authenticate

bearer = HTTPBearer(
    auto_error=False,
    description="An API token (`ar_...`) made with `POST /api/v1/tokens`; sent as `Authorization: Bearer <token>`.",
)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def _caller(  # reads one row by its key: on the event loop (see dependencies)
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> ApiToken | None:
    """The token the request carries, or None when it carries none; 401 for one that is not live, and
    for an Authorization header that is not a bearer token (even where reads need none)."""
    if credentials is not None:
        token = authenticate(store, credentials.credentials)
        if token is None:
            raise _unauthorized("the bearer token is unknown or revoked")
        return token
    if "authorization" in request.headers:
        raise _unauthorized("the Authorization header must be `Bearer TOKEN`")
    cookie = session_token(request)
    if cookie is None:
        return None
    token = authenticate(store, cookie)
    if token is None:
        raise _unauthorized("the dashboard session's token is unknown or revoked: sign in again")
    require_csrf(request)  # browsers send the cookie on other sites' requests too
    return token


def require(scope: Scope) -> Callable[..., Awaitable[ApiToken | None]]:
    """A dependency that lets the request through with at least `scope`."""

    async def check(
        caller: Annotated[ApiToken | None, Depends(_caller)], api_settings: ApiSettingsDep
    ) -> ApiToken | None:
        if caller is None:
            if scope is Scope.READ and api_settings.anonymous_reads:
                return None
            raise _unauthorized(
                f"this route needs a token with {scope} scope: send Authorization: Bearer TOKEN"
            )
        if not caller.scope.allows(scope):
            raise HTTPException(
                403, f"this route needs a token with {scope} scope; token {caller.name!r} has {caller.scope}"
            )
        return caller

    check.__name__ = f"require_{scope}"
    return check


CAN_READ = Depends(require(Scope.READ))
CAN_WRITE = Depends(require(Scope.WRITE))
IS_ADMIN = Depends(require(Scope.ADMIN))
