"""The dashboard in a real browser: headless Chromium (through Playwright) against a real uvicorn serving
the API and the dashboard over PostgreSQL. Each test leaves screenshots in test-artifacts/dashboard/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from autoresearch.adapters.db import SqlStore, open_store
from autoresearch.api import create_app
from autoresearch.domain.diffs import make_diff
from autoresearch.domain.model import (
    Campaign,
    FailureLabel,
    IdeaOrigin,
    Role,
    Scope,
    Trial,
    TrialResult,
    TrialRole,
)
from autoresearch.environment import load_environment
from autoresearch.services.auth import issue_token
from autoresearch.settings import Settings
from autoresearch.testing import ENVIRONMENTS_DIR
from tests.test_api import serving

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parents[1] / "test-artifacts" / "dashboard"
XSS = "<img src=x onerror=alert(1)>"

pytestmark = pytest.mark.postgres


def _missing(message: str) -> None:
    """Skip for want of a browser, except under CI, where the browser tests must run."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message, allow_module_level=True)


try:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Playwright, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    _missing("playwright is not installed: pip install -e '.[dev]'")


# the campaign --------------------------------------------------------------------------------------
def recipe(x: float, y: float, note: str = "") -> str:
    return f"x = {x}\ny = {y}\nparams = 10\n" + (f"# {note}\n" if note else "")


def recipe_diff(x: float, y: float) -> str:
    """A diff against the tiny environment's baseline recipe setting x and y."""
    return make_diff({"recipe.py": recipe(0.0, 0.0)}, {"recipe.py": recipe(x, y)})


def loss(x: float, y: float) -> float:
    return (x - 3) ** 2 + (y + 1) ** 2 + 1  # what the tiny environment's evaluator computes


@dataclass
class Made:
    campaign: Campaign
    trials: dict[int, Trial] = field(default_factory=dict)


def make_campaign(store: SqlStore) -> Made:
    """A campaign on the `tiny` environment as a controller would leave it: a scored baseline, scored
    children and grandchildren with diffs, failures of several labels, one running and one pending
    trial, an LLM call, and one idea whose text is an HTML injection."""
    env = load_environment(ENVIRONMENTS_DIR / "tiny")
    baseline_code = env.read_editable()
    campaign = store.create_campaign(
        name="tiny-dashboard",
        environment="tiny",
        preset="quick",
        strategy="evolve",
        goal="lower loss; <b>not bold</b>",
        trial_budget=40,
        concurrency=2,
        seed=0,
        distributed=True,
    )
    made = Made(campaign)

    def add(
        hypothesis: str,
        parent: Trial | None,
        xy: tuple[float, float] | None,
        outcome: FailureLabel | None = None,
        origin: IdeaOrigin = IdeaOrigin.MUTATION,
        finish: bool = True,
        note: str = "",
    ) -> Trial:
        idea = store.add_idea(
            campaign.id,
            hypothesis=hypothesis,
            origin=origin,
            surface="hyperparameters",
            parent_trial_ids=(parent.id,) if parent else (),
            rationale="Closer to the optimum of the evaluator.",
        )
        code = dict(baseline_code, **{"recipe.py": recipe(*xy, note)}) if xy else None
        code_diff = make_diff(baseline_code, code) if code else ""
        trial = store.add_trial(
            campaign.id, idea_id=idea.id, parent_id=parent.id if parent else None, seed=0, code_diff=code_diff
        )
        if parent is not None:
            store.add_patch(
                trial.id,
                attempt=1,
                diff=code_diff or "--- a/recipe.py\n+++ b/recipe.py\n@@ -9,1 +9,1 @@\n-z = 1\n+z = 2\n",
                applied=bool(code),
                error="" if code else "recipe.py: hunk 1 does not match",
                files=("recipe.py",),
            )
        if not finish:
            return trial
        lease = store.claim_trial(trial.id, worker="worker-1")
        assert lease is not None
        if outcome is None:
            assert xy is not None
            score = loss(*xy)
            curve = tuple({"step": float(s), "loss": score + 4.0 / s} for s in range(1, 9))
            result = TrialResult.scored(
                score,
                metrics={"loss": score, "params": 10.0},
                curve=curve,
                duration_s=1.5,
                log_tail=f"step 8 loss {score}\n---\nloss: {score}\n",
            )
        else:
            result = TrialResult.failed(
                outcome,
                f"the trial failed: {outcome}",
                duration_s=0.5,
                log_tail="Traceback (most recent call last):\n  <script>alert(2)</script>\n",
            )
        finished = store.finish_trial(trial.id, result, token=lease.token)
        assert finished is not None
        made.trials[finished.number] = finished
        return finished

    base = add("baseline", None, (0.0, 0.0), origin=IdeaOrigin.BASELINE)
    first = add("Set x to 2: closer to the optimum.", base, (2.0, 0.0), origin=IdeaOrigin.CATALOG)
    add("Set y to -1: the optimum of y.", base, (0.0, -1.0), origin=IdeaOrigin.CATALOG)
    best = add("Change y from 0.0 to -1.0.", first, (2.0, -1.0))
    add("Change x from 2.0 to 3.0.", best, (3.0, -1.0))
    add(XSS, first, (2.0, 1.0), origin=IdeaOrigin.LLM, note=XSS)  # in its code too
    add("Blow the recipe up.", best, (2.0, -1.0), FailureLabel.CRASH)
    add("Train for longer than the budget.", first, (4.0, 0.0), FailureLabel.TIMEOUT)
    add("Edit a line that is not there.", best, None, FailureLabel.PATCH_FAILED)
    add("Make the model huge.", base, (1.0, 1.0), FailureLabel.SIZE_CAP)
    for i in range(10):  # enough trials for the charts to have a shape
        add(f"Change x from 2.0 to {2.0 + i / 10}.", best, (2.0 + i / 10, -1.0 + i / 20))
    store.add_llm_call(
        campaign.id,
        role=Role.PROPOSER,
        model="stand-in:model",
        template="proposer@v1",
        prompt={"system": "s", "messages": []},
        response="{}",
        input_tokens=1200,
        output_tokens=300,
        dollars=0.0123,
        idea_id=made.trials[5].idea_id,
        trial_id=made.trials[5].id,
    )
    running = add("Still training.", best, (2.5, -1.0), finish=False)
    store.claim_trial(running.id, worker="worker-2")
    add("Waiting for a worker.", best, (2.6, -1.0), finish=False)
    return made


# the server and the browser --------------------------------------------------------------------------
@dataclass
class Site:
    url: str
    store: SqlStore
    made: Made
    token: str  # a write token

    @property
    def campaign_url(self) -> str:
        return f"{self.url}/campaigns/{self.made.campaign.name}"


@pytest.fixture
def site(tmp_path: Path, postgres_url: str) -> Iterator[Site]:
    store = open_store(postgres_url)
    made = make_campaign(store)
    token, _ = issue_token(store, name="dashboard-test", scope=Scope.WRITE)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=postgres_url, environments_path=str(ENVIRONMENTS_DIR)
    )
    app = create_app(settings)
    try:
        with serving(app) as url:
            yield Site(url, store, made, token)
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _missing(f"no Chromium at {CHROMIUM}: the dashboard's browser tests need it")
    with sync_playwright() as playwright:
        yield _launch(playwright)


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)


@dataclass
class Watched:
    """A browser page with what it said: dialogs opened, console errors, uncaught exceptions."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def shoot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Watched]:
    """A fresh browser context; closed before `site` stops, so no event stream holds the server up."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(10_000)
    expect.set_options(timeout=10_000)
    watched = Watched(context.new_page())

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    watched.page.on("dialog", on_dialog)
    watched.page.on("console", on_console)
    watched.page.on("pageerror", lambda error: watched.errors.append(str(error)))
    yield watched
    context.close()


def sign_in(page: Page, site: Site, token: str | None = None) -> None:
    page.goto(f"{site.url}/login")
    page.fill("input[name=token]", token or site.token)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{site.url}/")


def canvas_has_ink(page: Page, selector: str) -> bool:
    """Whether any canvas under `selector` has a pixel drawn on it."""
    result: Any = page.evaluate(
        """(selector) => [...document.querySelectorAll(selector + ' canvas')].some((canvas) => {
            if (!canvas.width || !canvas.height) return false;
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
            return false;
        })""",
        selector,
    )
    return bool(result)


def diff_lines(page: Page, pane: str, kind: str) -> list[str]:
    """The code of the lines a drawn diff adds (`ins`) or removes (`del`), in order."""
    lines: Any = page.eval_on_selector_all(
        f"{pane} .d2h-{kind} .d2h-code-line-ctn", "lines => lines.map(line => line.textContent)"
    )
    return [str(line).strip() for line in lines]


# the tests ---------------------------------------------------------------------------------------------
def test_signing_in_with_a_token_keeps_it_in_an_http_only_strict_cookie(page: Watched, site: Site) -> None:
    page.page.goto(site.url + "/")
    page.page.wait_for_url(f"{site.url}/login?next=%2F")  # no session yet: the sign-in form
    page.page.fill("input[name=token]", "ar_not-a-real-token")
    page.page.click("#login-form button[type=submit]")
    assert "unknown or revoked" in (page.page.text_content(".problem") or "")
    page.shoot("login")
    page.errors.clear()  # the browser logs the refused sign-in (401) as an error

    sign_in(page.page, site)

    page.page.wait_for_selector("#campaigns tbody tr[data-campaign='tiny-dashboard']")
    page.shoot("campaigns")
    cookies = {c["name"]: c for c in page.page.context.cookies()}
    session = cookies["autoresearch_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert site.token not in page.page.content()
    assert site.token not in page.page.url
    assert page.errors == []

    page.page.click("header button:has-text('Sign out')")
    page.page.wait_for_url(f"{site.url}/login")
    assert "autoresearch_session" not in {c["name"] for c in page.page.context.cookies()}


def test_the_campaign_page_draws_scores_failures_and_the_lineage(page: Watched, site: Site) -> None:
    sign_in(page.page, site)
    page.page.goto(site.campaign_url)

    page.page.wait_for_selector("#score-chart canvas")
    page.page.wait_for_selector("#failure-strip canvas")
    page.page.wait_for_selector("#dag canvas")
    page.page.wait_for_selector("#trials tbody tr[data-number]")
    expect(page.page.locator("#live")).to_have_attribute("data-state", "live")
    assert canvas_has_ink(page.page, "#score-chart")
    assert canvas_has_ink(page.page, "#failure-strip")
    assert canvas_has_ink(page.page, "#dag")
    labels = page.page.eval_on_selector_all("#labels tbody tr", "rows => rows.map(r => r.dataset.label)")
    assert labels == ["patch_failed", "crash", "timeout", "size_cap"]
    assert page.page.text_content("#counts [data-count=succeeded]") == "16"
    assert page.page.text_content("#best a") == "trial 4"  # x = 3, y = -1: the optimum, loss 1
    page.shoot("campaign")

    page.page.select_option("#trial-filter select[name=status]", "failed")
    page.page.click("#trial-filter button[type=submit]")
    expect(page.page.locator("#trials tbody tr[data-number]")).to_have_count(4)
    assert page.errors == []


def test_a_trial_page_shows_its_diff_highlighted(page: Watched, site: Site) -> None:
    sign_in(page.page, site)
    page.page.goto(f"{site.campaign_url}/trials/3")

    page.page.wait_for_selector("[data-diff-pane=parent] .d2h-file-wrapper")
    # Trial 3 sets y on trial 1, which had set x: against its parent only y changes.
    assert diff_lines(page.page, "[data-diff-pane=parent]", "del") == ["y = 0.0"]
    assert diff_lines(page.page, "[data-diff-pane=parent]", "ins") == ["y = -1.0"]
    assert (
        page.page.query_selector("[data-diff-pane=parent] .d2h-ins .hljs-number") is not None
    )  # highlighted
    page.page.wait_for_selector("#curve canvas")
    assert page.page.text_content("#hypothesis") == "Change y from 0.0 to -1.0."
    page.shoot("trial")

    page.page.click("[data-diff-tab=baseline]")
    page.page.wait_for_selector("[data-diff-pane=baseline] .d2h-file-wrapper")
    assert diff_lines(page.page, "[data-diff-pane=baseline]", "ins") == ["x = 2.0", "y = -1.0"]

    page.page.goto(f"{site.campaign_url}/compare?a=1&b=4")
    page.page.wait_for_selector("#code-diff .d2h-file-wrapper")
    page.page.wait_for_selector("#metrics tbody tr")
    page.shoot("compare")
    assert page.errors == []


def make_confirmed_campaign(store: SqlStore) -> Campaign:
    """A finished campaign on `tiny` whose baseline and one child were re-run on two fresh seeds."""
    env = load_environment(ENVIRONMENTS_DIR / "tiny")
    baseline_code = env.read_editable()
    campaign = store.create_campaign(
        name="tiny-confirmed",
        environment="tiny",
        preset="quick",
        strategy="evolve",
        goal="lower loss",
        trial_budget=2,
        concurrency=1,
        seed=0,
        confirm_top=1,
        confirm_seeds=2,
    )

    def run(trial: Trial, score: float, test: float | None = None) -> Trial:
        assert store.claim_trial(trial.id) is not None
        record = {"environment": "tiny", "seed": trial.seed, "sandbox": "bwrap"}
        result = TrialResult.scored(score, duration_s=1.0, test_score=test, record=record)
        finished = store.finish_trial(trial.id, result)
        assert finished is not None
        return finished

    baseline_idea = store.add_idea(campaign.id, hypothesis="baseline", origin=IdeaOrigin.BASELINE)
    baseline = run(store.add_trial(campaign.id, idea_id=baseline_idea.id, parent_id=None, seed=0), 11.0)
    idea = store.add_idea(
        campaign.id, hypothesis="Set x to 3.", origin=IdeaOrigin.CATALOG, parent_trial_ids=(baseline.id,)
    )
    code_diff = make_diff(baseline_code, dict(baseline_code, **{"recipe.py": recipe(3.0, 0.0)}))
    child = run(
        store.add_trial(campaign.id, idea_id=idea.id, parent_id=baseline.id, seed=0, code_diff=code_diff), 2.0
    )
    for seed, (base, better) in {1: (11.2, 2.1), 2: (10.9, 1.9)}.items():
        for trial, score in ((baseline, base), (child, better)):
            rerun = store.add_trial(
                campaign.id,
                idea_id=trial.idea_id,
                parent_id=trial.id,
                seed=seed,
                code_diff=trial.code_diff,
                role=TrialRole.CONFIRM,
                confirms=trial.id,
            )
            run(rerun, score, test=score + 0.5)
    return campaign


def test_a_confirmed_campaign_shows_search_and_confirmed_scores_side_by_side(
    page: Watched, site: Site
) -> None:
    campaign = make_confirmed_campaign(site.store)
    sign_in(page.page, site)
    page.page.goto(f"{site.url}/campaigns/{campaign.name}")
    card = page.page.wait_for_selector("#confirmed")
    assert card is not None
    assert "improved beyond noise: trial 1" in (page.page.text_content("#confirmed .verdict") or "")
    rows = page.page.query_selector_all("#confirmed tbody tr")
    cells = [[cell.inner_text() for cell in row.query_selector_all("td")] for row in rows]
    assert [row[:3] for row in cells] == [["#0", "baseline", "11.0000"], ["#1", "Set x to 3", "2.0000"]]
    assert cells[1][3] == "2.0000 (n=2)" and cells[1][5] == "2.5000"  # fresh seeds, then the test split
    assert cells[1][6] == "-9.0500"  # the mean of 2.1 - 11.2 and 1.9 - 10.9, paired by seed
    expect(page.page.locator("#budget")).to_contain_text("2 of 2")  # confirmation comes on top of the budget
    page.shoot("confirmed")

    rerun = site.store.get_trial_by_number(campaign.id, 5)  # the child's confirmation on seed 2
    page.page.goto(f"{site.url}/campaigns/{campaign.name}/trials/{rerun.number}")
    role = page.page.text_content("#role") or ""
    assert "confirm: trial #5 re-runs the program of #1" in " ".join(role.split())
    assert "at seed 2; on the test split it scored 2.4000" in " ".join(role.split())
    page.page.click("#record summary")
    assert "bwrap" in (page.page.text_content("#record") or "")
    assert page.errors == []


def test_an_idea_seeded_through_the_form_waits_in_the_ideas_list(page: Watched, site: Site) -> None:
    sign_in(page.page, site)
    page.page.goto(site.campaign_url)
    page.page.wait_for_selector("#idea-form")

    page.page.fill("#idea-form [name=hypothesis]", "Set x to 3: the optimum of x.")
    page.page.fill("#idea-form [name=parent]", "3")
    page.page.fill("#idea-form [name=diff]", recipe_diff(3.0, 0.0))
    page.page.click("#idea-form button[type=submit]")

    page.page.wait_for_selector("#idea-list li:has-text('Set x to 3: the optimum of x.')")
    assert "seeded idea" in (page.page.text_content("#idea-result") or "")
    page.shoot("seeded-idea")
    headers = {"Authorization": f"Bearer {site.token}"}
    ideas = httpx2.get(f"{site.url}/api/v1/campaigns/tiny-dashboard/ideas", headers=headers).json()
    seeded = [i for i in ideas if i["hypothesis"] == "Set x to 3: the optimum of x."]
    assert [(i["origin"], i["parents"], i["trial"]) for i in seeded] == [("user", [3], None)]
    assert page.errors == []


def test_untrusted_text_shows_as_text_and_runs_nothing(page: Watched, site: Site) -> None:
    sign_in(page.page, site)
    page.page.goto(site.campaign_url)
    page.page.wait_for_selector("#idea-form")
    page.page.fill("#idea-form [name=hypothesis]", XSS)
    page.page.fill("#idea-form [name=diff]", recipe_diff(1.0, 0.0))
    page.page.click("#idea-form button[type=submit]")
    page.page.wait_for_selector(f"#idea-list li:has-text('{XSS}')")
    assert page.page.text_content("#trials tbody tr[data-number='5'] .title-cell") == XSS
    assert "<b>not bold</b>" in (page.page.text_content(".goal") or "")
    assert page.page.query_selector("img[src=x]") is None
    page.shoot("untrusted-campaign")

    page.page.goto(f"{site.campaign_url}/trials/5")
    expect(page.page.locator("#hypothesis")).to_have_text(XSS)
    page.page.wait_for_selector("[data-diff-pane=parent] .d2h-ins")
    assert f"# {XSS}" in diff_lines(page.page, "[data-diff-pane=parent]", "ins")
    assert page.page.query_selector("img[src=x]") is None
    page.page.goto(f"{site.campaign_url}/trials/6")
    expect(page.page.locator("#log-tail")).to_contain_text("<script>alert(2)</script>")
    page.shoot("untrusted-trial")

    assert page.page.query_selector("img[src=x]") is None
    assert page.dialogs == []
    assert page.errors == []
    page.page.evaluate("alert('control')")  # the watch would have seen a dialog
    assert page.dialogs == ["control"]


def test_a_write_without_the_csrf_token_is_refused(page: Watched, site: Site) -> None:
    sign_in(page.page, site)
    page.page.goto(site.campaign_url)
    page.page.wait_for_selector("#steer")

    refused: Any = page.page.evaluate(
        """async () => {
            const r = await fetch('/api/v1/campaigns/tiny-dashboard/pause', {method: 'POST'});
            return [r.status, r.headers.get('content-type'), await r.json()];
        }"""
    )
    assert refused[0] == 403
    assert refused[1].startswith("application/problem+json") and "CSRF" in refused[2]["detail"]
    assert site.store.get_campaign("tiny-dashboard").status == "running"

    page.page.click("#steer [data-action=pause]")  # the page's own button sends the token
    expect(page.page.locator("#steer-result")).to_have_text("campaign is stopped")
    assert site.store.get_campaign("tiny-dashboard").status == "stopped"

    signed_out: Any = page.page.evaluate(
        "async () => (await fetch('/logout', {method: 'POST', body: new URLSearchParams({csrf_token: 'x'})})).status"
    )
    assert signed_out == 403
    page.errors.clear()  # the refused requests are logged by the browser as errors


def test_a_trial_that_finishes_shows_up_without_a_reload(page: Watched, site: Site) -> None:
    sign_in(page.page, site)
    page.page.goto(site.campaign_url)
    expect(page.page.locator("#live")).to_have_attribute("data-state", "live")
    running = next(t for t in site.store.list_trials(site.made.campaign.id) if t.status == "running")

    result = TrialResult.scored(0.5, metrics={"loss": 0.5}, duration_s=2.0)
    assert site.store.finish_trial(running.id, result) is not None

    row = f"#trials tbody tr[data-number='{running.number}']"
    expect(page.page.locator(f"{row} [data-cell=score]")).to_have_text("0.5")  # no reload
    expect(page.page.locator("#counts [data-count=succeeded]")).to_have_text("17")
    expect(page.page.locator("#best .big")).to_have_text("0.5")
    page.shoot("live-update")
    assert page.errors == []


def test_pages_forbid_inline_scripts_and_are_never_cached(site: Site) -> None:
    response = httpx2.get(f"{site.url}/login")

    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"


def test_signing_in_never_sends_the_browser_to_another_site(site: Site) -> None:
    with httpx2.Client(base_url=site.url) as client:
        form = client.get("/login").text
        csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        response = client.post(
            "/login", data={"csrf_token": csrf, "token": site.token, "next": "//evil.example/"}
        )

    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_a_sign_in_form_from_another_site_is_refused(site: Site) -> None:
    # Another site can post a form, but cannot read or set the form token's cookie on this one.
    response = httpx2.post(
        f"{site.url}/login", data={"csrf_token": "forged", "token": site.token, "next": "/"}
    )

    assert response.status_code == 403
    assert "autoresearch_session" not in response.headers.get("set-cookie", "")


def test_pages_need_a_session_and_name_what_is_missing(site: Site) -> None:
    with httpx2.Client(base_url=site.url) as client:
        assert client.get("/campaigns/tiny-dashboard/trials/3").headers["location"] == (
            "/login?next=%2Fcampaigns%2Ftiny-dashboard%2Ftrials%2F3"
        )
        client.cookies.set("autoresearch_session", site.token)
        missing = client.get("/campaigns/tiny-dashboard/trials/999")

    assert missing.status_code == 404
    assert "has no trial number 999" in missing.text
    assert site.token not in missing.text
