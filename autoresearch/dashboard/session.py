"""The dashboard's session: the API token a person signed in with, in an HttpOnly cookie, and the CSRF
token every write from a page must carry.

The CSRF token is an HMAC of the session token: a page can show it (in a `<meta>` tag and hidden form
fields) without showing the session token, a cross-site page can neither read nor forge it, and any API
process checks it without shared server state. Signing in is guarded the same way by a random token
kept in a short-lived cookie (double submit), so no other site can sign a browser in as someone else.

The JSON API's auth calls `session_token` and `require_csrf`, so browser scripts use the cookie where
other clients send `Authorization: Bearer`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import HTTPException, Request, Response

SESSION_COOKIE = "autoresearch_session"
LOGIN_COOKIE = "autoresearch_login"  # the sign-in form's CSRF token, before there is a session
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_MAX_AGE_S = 7 * 24 * 3600
LOGIN_MAX_AGE_S = 3600
_CSRF_PURPOSE = b"autoresearch dashboard csrf v1"


def session_token(request: Request) -> str | None:
    """The API token of the request's dashboard session, or None when it has none."""
    return request.cookies.get(SESSION_COOKIE) or None


def csrf_token(session: str) -> str:
    """The CSRF token of a session: unforgeable without the session token, which it does not reveal."""
    return hmac.new(session.encode(), _CSRF_PURPOSE, hashlib.sha256).hexdigest()


def csrf_matches(session: str | None, sent: str | None) -> bool:
    return bool(session and sent) and hmac.compare_digest(str(sent), csrf_token(str(session)))


def require_csrf(request: Request) -> None:
    """Let a request that authenticates with the session cookie through only when it is safe (GET, HEAD,
    OPTIONS) or carries the session's CSRF token in `X-CSRF-Token`; 403 otherwise."""
    if request.method in SAFE_METHODS:
        return
    if not csrf_matches(session_token(request), request.headers.get(CSRF_HEADER)):
        raise HTTPException(
            403,
            f"a write with the dashboard's session cookie needs the page's CSRF token in {CSRF_HEADER}: "
            "reload the page and try again",
        )


def _is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def start_session(response: Response, request: Request, token: str) -> None:
    """Keep `token` in the session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site
    sends it), Secure when the page came over https."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_is_https(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")


def end_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_is_https(request)
    )


def login_csrf(request: Request) -> str:
    """The sign-in form's CSRF token: the one the browser already holds, or a new one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def keep_login_csrf(response: Response, request: Request, token: str) -> None:
    """Set the cookie the sign-in form's hidden field must match."""
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_MAX_AGE_S,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=_is_https(request),
    )


def login_csrf_matches(request: Request, sent: str | None) -> bool:
    held = request.cookies.get(LOGIN_COOKIE)
    return bool(held and sent) and hmac.compare_digest(str(held), str(sent))
