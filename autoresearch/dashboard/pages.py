"""The dashboard's pages: server-rendered shells whose scripts read and steer through the JSON API.

The shells carry no campaign data beyond names and numbers, with one exception the API lacks: the diff
between two trials' code, rebuilt here from the environment's baseline (`dashboard.diffs`). Everything
that came from an LLM or a trial is escaped by Jinja2 here and set as text by the scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from autoresearch import __version__
from autoresearch.api.dependencies import settings_of, store_of
from autoresearch.dashboard import session
from autoresearch.dashboard.diffs import CodeDiff, code_diff
from autoresearch.domain.model import Campaign, FailureLabel, Scope, Trial, TrialStatus
from autoresearch.errors import NotFound
from autoresearch.services.auth import authenticate
from autoresearch.services.reports import campaign_confirmation, direction_finder
from autoresearch.services.store import Store

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
MAX_FORM_BYTES = 16 * 1024

# Scripts and styles only from this origin: no inline script, no eval, nothing from elsewhere. Scripts
# may still set element styles through the CSSOM (charts size their canvases). The one inline style is
# the rule cytoscape injects for its container, allowed by its hash: a new cytoscape that changes it fails
# the browser tests (they fail on any console error) rather than breaking the graph silently.
CYTOSCAPE_CONTAINER_STYLE = "'sha256-pgvDUBa4IjFA2yuSJ2cqcyxmNYJMborsd0ORcRv9vw8='"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        f"style-src 'self' {CYTOSCAPE_CONTAINER_STYLE}",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",  # pages carry the session's CSRF token
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def campaign_path(campaign: Campaign) -> str:
    return "/campaigns/" + quote(campaign.name, safe="")


templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.globals["version"] = __version__
templates.filters["campaign_path"] = campaign_path

router = APIRouter(include_in_schema=False)


# who is looking ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Viewer:
    """Who a page is for: a signed-in token's name and scope, or an anonymous reader."""

    name: str
    scope: Scope
    csrf: str  # the session's CSRF token; "" for an anonymous reader, who cannot write
    signed_in: bool

    @property
    def can_write(self) -> bool:
        return self.signed_in and self.scope.allows(Scope.WRITE)


def _anonymous_reads(request: Request) -> bool:
    api_settings = getattr(request.app.state, "api_settings", None)
    return bool(getattr(api_settings, "anonymous_reads", False))


def viewer_of(request: Request) -> Viewer | None:
    """The viewer the session cookie names; an anonymous reader when the API allows those; else None."""
    token = session.session_token(request)
    if token is not None:
        found = authenticate(store_of(request), token)
        if found is not None:
            return Viewer(name=found.name, scope=found.scope, csrf=session.csrf_token(token), signed_in=True)
    if _anonymous_reads(request):
        return Viewer(name="anonymous", scope=Scope.READ, csrf="", signed_in=False)
    return None


def _local(path: str | None) -> str:
    """`path` when it is a path on this site, else the front page: sign-in never redirects elsewhere."""
    if not path or not path.startswith("/") or path.startswith(("//", "/\\")):
        return "/"
    return path


def _sign_in_first(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


# rendering --------------------------------------------------------------------------------------
def render(name: str, *, viewer: Viewer | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(viewer=viewer, csrf_field=session.CSRF_FIELD, **context)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def _not_found(viewer: Viewer, detail: str) -> HTMLResponse:
    return render("error.html", viewer=viewer, status_code=404, title="Not found", detail=detail)


# pages ------------------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def campaigns_page(request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return _sign_in_first(request)
    return render("campaigns.html", viewer=viewer)


@router.get("/campaigns/{ref}", response_class=HTMLResponse)
def campaign_page(ref: str, request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return _sign_in_first(request)
    store = store_of(request)
    try:
        campaign = store.get_campaign(ref)
    except NotFound as exc:
        return _not_found(viewer, str(exc))
    direction = direction_finder(settings_of(request))(campaign.environment)
    return render(
        "campaign.html",
        viewer=viewer,
        campaign=campaign,
        statuses=list(TrialStatus),
        labels=list(FailureLabel),
        confirmed=campaign_confirmation(store, campaign, direction),
    )


@router.get("/campaigns/{ref}/trials/{number}", response_class=HTMLResponse)
def trial_page(ref: str, number: int, request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return _sign_in_first(request)
    store = store_of(request)
    try:
        campaign = store.get_campaign(ref)
        trial = store.get_trial_by_number(campaign.id, number)
    except NotFound as exc:
        return _not_found(viewer, str(exc))
    parent = store.get_trial(trial.parent_id) if trial.parent_id is not None else None
    against_parent = (
        code_diff(settings_of(request), campaign, parent, trial)
        if parent is not None
        else CodeDiff("", "the baseline has no parent")
    )
    rerun_of = store.get_trial(trial.confirms) if trial.confirms is not None else None
    return render(
        "trial.html",
        viewer=viewer,
        campaign=campaign,
        trial=trial,
        parent=parent,
        against_parent=against_parent,
        rerun_of=rerun_of,
    )


@router.get("/campaigns/{ref}/compare", response_class=HTMLResponse)
def compare_page(
    ref: str,
    request: Request,
    a: Annotated[int | None, Query(ge=0)] = None,
    b: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return _sign_in_first(request)
    store = store_of(request)
    try:
        campaign = store.get_campaign(ref)
        pair = _pair(store, campaign, a, b)
    except NotFound as exc:
        return _not_found(viewer, str(exc))
    diff = code_diff(settings_of(request), campaign, *pair) if pair else None
    return render("compare.html", viewer=viewer, campaign=campaign, a=a, b=b, pair=pair, diff=diff)


def _pair(store: Store, campaign: Campaign, a: int | None, b: int | None) -> tuple[Trial, Trial] | None:
    if a is None or b is None:
        return None
    return store.get_trial_by_number(campaign.id, a), store.get_trial_by_number(campaign.id, b)


# signing in and out -----------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, _local(next))


def _login_page(request: Request, target: str, error: str = "", status_code: int = 200) -> HTMLResponse:
    token = session.login_csrf(request)
    response = render(
        "login.html", viewer=None, status_code=status_code, next=target, error=error, login_csrf=token
    )
    session.keep_login_csrf(response, request, token)
    return response


async def _form(request: Request) -> dict[str, str] | None:
    """A small url-encoded form's fields (the first value of each), or None when it is too large. Parsed
    here because the dashboard's two forms do not warrant python-multipart."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    except ValueError:  # more fields than any of these forms has
        return None
    return {name: values[0] for name, values in fields.items()}


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await _form(request)
    if form is None:
        return _login_page(request, "/", "the form is too large", 413)
    target = _local(form.get("next"))
    if not session.login_csrf_matches(request, form.get(session.CSRF_FIELD)):
        return _login_page(request, target, "the form expired: sign in again", 403)
    token = form.get("token", "").strip()
    found = await run_in_threadpool(authenticate, store_of(request), token) if token else None
    if found is None:
        return _login_page(request, target, "that token is unknown or revoked", 401)
    response = RedirectResponse(target, status_code=303)
    session.start_session(response, request, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    sent = form.get(session.CSRF_FIELD) if form else None
    if not session.csrf_matches(session.session_token(request), sent):
        viewer = await run_in_threadpool(viewer_of, request)
        return render(
            "error.html", viewer=viewer, status_code=403, title="Forbidden", detail="sign out from a page"
        )
    response = RedirectResponse("/login", status_code=303)
    session.end_session(response, request)
    return response


# wiring -----------------------------------------------------------------------------------------
def install(app: FastAPI) -> None:
    """Serve the dashboard from `app`: its pages at `/`, its scripts and styles under `/static`. The app
    keeps its store and settings on `app.state`, as the API's `create_app` does."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
