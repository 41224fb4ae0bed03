"""The cap on a request's body, enforced before anything reads it: routing, the token check, parsing.

FastAPI reads a JSON body before it runs a route's dependencies, the token check among them: without a cap,
anyone who reaches the port could make each worker read (and hold) a body of any size before the 401. This
is plain ASGI middleware around the whole app. A declared `Content-Length` over the cap is a 413 at once,
with nothing read; a body without one (chunked) is counted as it arrives and stopped with a 413 at the first
chunk past the cap. Either way the answer closes the connection, so the server stops receiving the rest.

Starlette's own `RequestBodyLimitMiddleware` (FastAPI's `max_body_size`) is not used: it checks a declared
length only once the app reads or answers, answers in plain text rather than a problem document, and leaves
the connection open to drain the rest of the body.
"""

from __future__ import annotations

from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autoresearch.api.problems import problem

SETTING = "AUTORESEARCH_API_MAX_BODY_BYTES"
_CLOSE = {"Connection": "close"}


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body passes the cap. An HTTPException, so that FastAPI's body
    parsing lets it through (it turns other errors into a 400) and the problem handlers answer it."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(HTTPStatus.REQUEST_ENTITY_TOO_LARGE.value, _detail(max_bytes), headers=_CLOSE)


def _detail(max_bytes: int) -> str:
    return f"the request body is over the {max_bytes:,} bytes this server takes ({SETTING})"


class BodyCap:
    """Answer 413 for a request whose body is longer than `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        # The server's parser has refused a Content-Length that is not a number already.
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:  # read by something that did not pass it to the problem handlers
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE.value, _detail(self.max_bytes), _CLOSE)
        await response(scope, receive, send)
