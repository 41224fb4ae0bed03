"""The LLM path end to end: proposer, implementer with revisions, analyst, novelty gate and budgets,
through the real OpenAI SDK against the stand-in server over real HTTP, on the real store."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from autoresearch.adapters.db import SqlStore
from autoresearch.agents.build import open_agents
from autoresearch.agents.calls import Agents
from autoresearch.agents.config import AgentsConfig, agents_config
from autoresearch.domain.diffs import make_diff
from autoresearch.domain.model import FailureLabel, IdeaOrigin, Role, TrialStatus
from autoresearch.services import reports
from autoresearch.services.campaign import CampaignController, CampaignOutcome, create_campaign
from autoresearch.settings import Price, Settings
from autoresearch.testing.llm_server import Reply, StandInCall, StandInServer
from autoresearch.testing.stand_in_brain import CatalogBrain
from tests.test_campaign import ENV, ScoreRecipe

BASELINE = ENV.read_editable()["recipe.py"]
MOVE_X = "Set x to 2 to bring the recipe closer to the optimum of the loss."
MOVE_Y = "Set y to -1, which is where the evaluator's loss has its minimum in y."


def ideas(*hypotheses: str, surface: str = "hyperparameters") -> str:
    drafts = [
        {"hypothesis": h, "rationale": "the loss is a bowl", "surface": surface, "expected_effect": "-1"}
        for h in hypotheses
    ]
    return json.dumps({"ideas": drafts})


def patch(old: str, new: str, *, stale: bool = False) -> str:
    diff = make_diff({"recipe.py": BASELINE}, {"recipe.py": BASELINE.replace(old, new)})
    if stale:  # a context line the model misremembered: the diff cannot apply
        diff = diff.replace(" params = 10", " params = 12")
    return f"Here is the change.\n```diff\n{diff}```\n"


Answer = Reply | str


def by_role(**script: list[Answer]) -> Callable[[StandInCall], Reply]:
    """Answers each role from its own list in order; the last answer repeats."""
    lock = threading.Lock()

    def respond(call: StandInCall) -> Reply:
        role = next(r for r in script if f"You are the {r}" in call.system)
        with lock:
            queue = script[role]
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer if isinstance(answer, Reply) else Reply(text=answer)

    return respond


@contextmanager
def llm_campaign(
    store: SqlStore,
    tmp_path: Path,
    responder: Callable[[StandInCall], Reply],
    *,
    trials: int,
    strategy: str = "evolve",
    settings: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[tuple[StandInServer, Callable[[], CampaignOutcome]]]:
    with StandInServer(responder) as server:
        model = f"openai-compatible:{server.openai_base_url}:scripted"
        config = agents_config(model, **({"ideas_per_call": 1} | options))
        assert config is not None
        campaign = create_campaign(
            store,
            ENV,
            preset=None,
            strategy=strategy,
            trials=trials,
            concurrency=1,
            seed=0,
            name=None,
            goal="lower the loss",
            agents=config.model_dump(mode="json"),
        )
        values = {"data_dir": tmp_path, "llm_backoff_s": 0.01, "llm_timeout_s": 5.0} | (settings or {})
        cancel = threading.Event()

        def run() -> CampaignOutcome:
            current = store.get_campaign(campaign.id)  # as a resume reads it, limits changed included
            with open_agents(store, current, ENV, Settings(**values), None, cancel) as agents:
                assert agents is not None
                controller = CampaignController(
                    store,
                    current,
                    ENV,
                    ScoreRecipe(),
                    agents.proposer,  # type: ignore[arg-type]
                    implementer=agents.implementer,
                    novelty=agents.novelty,
                    analyst=agents.analyst,
                )
                return controller.run(cancel)

        yield server, run


def test_a_patch_that_fails_to_apply_is_revised_and_both_attempts_are_recorded(
    store: SqlStore, tmp_path: Path
) -> None:
    script = by_role(
        proposer=[ideas(MOVE_X)],
        implementer=[patch("x = 0.0", "x = 2.0", stale=True), patch("x = 0.0", "x = 2.0")],
        analyst=["Moving x toward 3 cut the loss from 11 to 3; try y next."],
    )
    with llm_campaign(store, tmp_path, script, trials=2) as (_, run):
        outcome = run()

    trial = store.get_trial_by_number(outcome.campaign.id, 1)
    assert trial.status is TrialStatus.SUCCEEDED and trial.score == 3.0
    first, second = store.list_patches(trial.id)
    assert not first.applied and "does not match" in first.error
    assert second.accepted and second.llm_call_id is not None
    report = reports.trial_report(store, trial)
    roles = [c["role"] for c in report["llm_calls"]]
    assert roles == [Role.PROPOSER, Role.IMPLEMENTER, Role.IMPLEMENTER, Role.ANALYST]
    revision = report["llm_calls"][2]["prompt"]["messages"]
    assert [m["role"] for m in revision] == ["user", "assistant", "user"]
    assert "does not match" in revision[2]["content"]  # the error went back to the model
    assert report["llm_calls"][1]["template"] == "implementer@v1"
    assert report["idea"]["origin"] == IdeaOrigin.LLM and report["idea"]["rationale"].startswith("the loss")
    assert trial.analysis.startswith("Moving x toward 3")


def test_a_patch_that_fails_three_times_is_patch_failed_and_the_campaign_goes_on(
    store: SqlStore, tmp_path: Path
) -> None:
    stale = patch("x = 0.0", "x = 2.0", stale=True)
    script = by_role(
        proposer=[ideas(MOVE_X, MOVE_Y)],
        implementer=[stale, stale, stale, patch("y = 0.0", "y = -1.0")],
        analyst=["noted"],
    )
    with llm_campaign(store, tmp_path, script, trials=3, ideas_per_call=2) as (_, run):
        outcome = run()

    failed, succeeded = store.list_trials(outcome.campaign.id)[1:]
    assert failed.label is FailureLabel.PATCH_FAILED and "after 3 attempts" in failed.reason
    assert [p.applied for p in store.list_patches(failed.id)] == [False, False, False]
    assert succeeded.status is TrialStatus.SUCCEEDED and succeeded.score == 10.0
    assert str(outcome.campaign.status) == "finished"


def test_malformed_proposals_are_retried_and_recorded_never_a_crash(store: SqlStore, tmp_path: Path) -> None:
    script = by_role(
        proposer=[
            'Sure! {"ideas": [{"hypothesis": "more layers"} }',
            json.dumps({"ideas": []}),
            ideas(MOVE_X),
        ],
        implementer=[patch("x = 0.0", "x = 2.0")],
        analyst=["noted"],
    )
    with llm_campaign(store, tmp_path, script, trials=2) as (_, run):
        outcome = run()

    calls = [c for c in store.list_llm_calls(outcome.campaign.id) if c.role is Role.PROPOSER]
    assert [bool(c.error) for c in calls] == [True, True, False]
    assert "invalid JSON" in calls[0].error and "ideas" in calls[1].error
    assert store.get_trial_by_number(outcome.campaign.id, 1).status is TrialStatus.SUCCEEDED


def test_a_model_that_never_answers_usably_stops_the_proposer_with_a_reason(
    store: SqlStore, tmp_path: Path
) -> None:
    script = by_role(proposer=["I would rather not."], implementer=["-"], analyst=["-"])
    with llm_campaign(store, tmp_path, script, trials=5) as (_, run):
        outcome = run()

    assert "no usable ideas 3 rounds in a row" in outcome.proposer_stopped
    assert len(store.list_trials(outcome.campaign.id)) == 1  # the baseline alone
    assert len(store.list_llm_calls(outcome.campaign.id)) == 9  # 3 rounds of 1 call and 2 re-asks
    assert str(outcome.campaign.status) == "finished"


def test_near_duplicate_ideas_are_dropped_before_any_trial_is_created(
    store: SqlStore, tmp_path: Path
) -> None:
    script = by_role(
        proposer=[ideas(MOVE_X, "Put differently: " + MOVE_X, MOVE_Y)],
        implementer=[patch("x = 0.0", "x = 2.0"), patch("y = 0.0", "y = -1.0")],
        analyst=["noted"],
    )
    with llm_campaign(store, tmp_path, script, trials=3, ideas_per_call=3) as (_, run):
        outcome = run()

    recorded = store.list_ideas(outcome.campaign.id)
    originals = {i.hypothesis: i.id for i in recorded if i.duplicate_of is None}
    copies = [i for i in recorded if i.hypothesis.startswith("Put differently")]
    assert copies and all(i.duplicate_of == originals[MOVE_X] for i in copies)
    trials = store.list_trials(outcome.campaign.id)
    assert {t.idea_id for t in trials[1:]} == {originals[MOVE_X], originals[MOVE_Y]}
    implemented = {c.idea_id for c in store.list_llm_calls(outcome.campaign.id) if c.role is Role.IMPLEMENTER}
    assert not implemented & {i.id for i in copies}


def test_a_dollar_budget_stops_the_campaign_at_the_limit_and_the_totals_are_reported(
    store: SqlStore, tmp_path: Path
) -> None:
    dollar = {"input_tokens": 1000, "output_tokens": 0}  # $1 per call at the price below
    script = by_role(
        proposer=[Reply(text=ideas(MOVE_X, MOVE_Y), **dollar)],
        implementer=[Reply(text=patch("x = 0.0", "x = 2.0"), **dollar)],
        analyst=[Reply(text="noted", **dollar)],
    )
    prices = {"scripted": Price(input=1000.0, output=0.0)}
    with llm_campaign(
        store, tmp_path, script, trials=10, ideas_per_call=2, max_dollars=2.5, settings={"prices": prices}
    ) as (_, run):
        outcome = run()

    assert "budget is used up ($3.0000 of $2.5 spent)" in outcome.proposer_stopped
    llm = reports.llm_report(store, outcome.campaign)
    # proposer $1, implementer $1 (total $2 < $2.5), analyst $1 -> $3: no call starts after that.
    assert llm["total"]["dollars"] == pytest.approx(3.0) and llm["total"]["calls"] == 3
    assert {role: u["dollars"] for role, u in llm["roles"].items()} == {
        "analyst": 1.0,
        "implementer": 1.0,
        "proposer": 1.0,
    }
    assert llm["roles"]["implementer"]["trials"] == 1
    assert len(store.list_trials(outcome.campaign.id)) == 2
    assert str(outcome.campaign.status) == "finished"


def test_rate_limits_and_timeouts_are_retried_and_never_lose_a_trial(store: SqlStore, tmp_path: Path) -> None:
    script = by_role(
        proposer=[
            Reply(text="", status=429, retry_after="0"),
            Reply(text=ideas(MOVE_X), delay_s=1.5),
            Reply(text=ideas(MOVE_X)),
        ],
        implementer=[Reply(text="", status=503), patch("x = 0.0", "x = 2.0")],
        analyst=["noted"],
    )
    with llm_campaign(store, tmp_path, script, trials=2, settings={"llm_timeout_s": 0.5}) as (_, run):
        outcome = run()

    trial = store.get_trial_by_number(outcome.campaign.id, 1)
    assert trial.status is TrialStatus.SUCCEEDED
    calls = store.list_llm_calls(outcome.campaign.id)
    assert [(c.role, c.attempts, c.error) for c in calls[:2]] == [
        (Role.PROPOSER, 3, ""),
        (Role.IMPLEMENTER, 2, ""),
    ]


def test_specialists_take_turns_over_the_environments_surfaces(store: SqlStore, tmp_path: Path) -> None:
    script = by_role(
        # The specialist's surface is what counts, whatever the model says.
        proposer=[
            ideas(MOVE_X),
            ideas(MOVE_Y),
            ideas("Print the loss every step so that runs are easier to follow."),
            ideas("Use ten times fewer parameters to stay far below the size cap."),
        ],
        implementer=[patch("x = 0.0", "x = 2.0")],
        analyst=["noted"],
    )
    with llm_campaign(store, tmp_path, script, trials=5, strategy="specialists") as (server, run):
        outcome = run()

    surfaces = [i.surface for i in store.list_ideas(outcome.campaign.id) if i.origin is IdeaOrigin.LLM]
    assert sorted(surfaces) == ["behaviour", "behaviour", "hyperparameters", "hyperparameters"]
    systems = [r.body["messages"][0]["content"] for r in server.requests if "proposer" in str(r.body)]
    assert any("You are the behaviour specialist" in s for s in systems)
    assert any("You are the hyperparameters specialist" in s for s in systems)


def test_a_patch_that_breaks_the_code_fails_preflight_and_is_revised(store: SqlStore, tmp_path: Path) -> None:
    script = by_role(
        proposer=[ideas(MOVE_X)],
        implementer=[patch("x = 0.0", "x = = 2.0"), patch("x = 0.0", "x = 2.0")],
        analyst=["noted"],
    )
    with llm_campaign(store, tmp_path, script, trials=2) as (_, run):
        outcome = run()

    trial = store.get_trial_by_number(outcome.campaign.id, 1)
    first, second = store.list_patches(trial.id)
    assert first.applied and not first.accepted and first.error.startswith("preflight: recipe.py line 1")
    assert second.accepted and trial.status is TrialStatus.SUCCEEDED


def test_the_analyst_skips_a_patch_that_never_ran(store: SqlStore, tmp_path: Path) -> None:
    stale = patch("x = 0.0", "x = 2.0", stale=True)
    script = by_role(proposer=[ideas(MOVE_X)], implementer=[stale], analyst=["noted"])
    with llm_campaign(store, tmp_path, script, trials=2) as (_, run):
        outcome = run()

    assert store.get_trial_by_number(outcome.campaign.id, 1).label is FailureLabel.PATCH_FAILED
    assert all(c.role is not Role.ANALYST for c in store.list_llm_calls(outcome.campaign.id))


def test_a_spent_budget_still_lets_interrupted_trials_run_again(store: SqlStore, tmp_path: Path) -> None:
    script = by_role(proposer=[ideas(MOVE_X)], implementer=[patch("x = 0.0", "x = 2.0")], analyst=["noted"])
    with llm_campaign(store, tmp_path, script, trials=3, max_tokens=1) as (_, run):
        first = run()  # the proposer's one call spends the budget: the implementer may not start
        assert "tokens spent" in first.proposer_stopped
        campaign = first.campaign
        baseline = store.get_trial_by_number(campaign.id, 0)
        idea = store.list_ideas(campaign.id)[-1]
        baseline_code = ENV.read_editable()
        moved = {**baseline_code, "recipe.py": baseline_code["recipe.py"].replace("x = 0.0", "x = 2.0")}
        lost = store.add_trial(
            campaign.id,
            idea_id=idea.id,
            parent_id=baseline.id,
            seed=0,
            code_diff=make_diff(baseline_code, moved),
        )
        assert store.claim_trial(lost.id)  # as if the process had died while it ran
        second = run()

    retry = store.list_trials(second.campaign.id)[-1]
    assert retry.retry_of == lost.id and retry.status is TrialStatus.SUCCEEDED
    assert "tokens spent" in second.proposer_stopped


def test_a_spent_role_budget_stops_that_role_only(store: SqlStore, tmp_path: Path) -> None:
    brain = CatalogBrain(ENV, malformed_first=False, stale_every=0)  # patches that apply to any parent
    with llm_campaign(
        store, tmp_path, brain, trials=4, ideas_per_call=2, role_budgets=["analyst:tokens=1"]
    ) as (
        _,
        run,
    ):
        outcome = run()

    trials = store.list_trials(outcome.campaign.id)
    ran = [t for t in trials[1:] if t.duration_s is not None]
    assert len(trials) == 4 and len(ran) >= 2  # the analyst would have had a trial to note after its first
    usage = store.llm_usage(outcome.campaign.id)
    assert usage[Role.ANALYST].calls == 1 and [t.analysis != "" for t in ran] == [True] + [False] * (
        len(ran) - 1
    )
    assert outcome.proposer_stopped == ""


def test_an_idea_cut_off_by_a_spent_budget_is_implemented_when_the_campaign_resumes_with_more(
    store: SqlStore, tmp_path: Path
) -> None:
    script = by_role(proposer=[ideas(MOVE_X)], implementer=[patch("x = 0.0", "x = 2.0")], analyst=["noted"])
    with llm_campaign(store, tmp_path, script, trials=2, max_tokens=1) as (_, run):
        first = run()
        [orphan] = [i for i in store.list_ideas(first.campaign.id) if i.origin is IdeaOrigin.LLM]
        assert len(store.list_trials(first.campaign.id)) == 1  # the implementer was refused: no trial
        config = AgentsConfig.of(first.campaign.agents)
        assert config is not None
        store.set_campaign_limits(
            first.campaign.id, agents=config.with_budget(dollars=None, tokens=10**6).model_dump(mode="json")
        )
        second = run()

    trial = store.get_trial_by_number(second.campaign.id, 1)
    assert trial.idea_id == orphan.id and trial.status is TrialStatus.SUCCEEDED
    assert second.proposer_stopped == ""


def test_a_budget_raised_in_the_store_counts_at_once_as_does_every_process_spend(store: SqlStore) -> None:
    config = agents_config("stand-in", max_tokens=1_000)
    assert config is not None
    campaign = create_campaign(
        store,
        ENV,
        preset=None,
        strategy="evolve",
        trials=3,
        concurrency=1,
        seed=0,
        name=None,
        goal="",
        agents=config.model_dump(mode="json"),
    )
    agents = Agents(store, campaign.id, config, {}, {})
    assert agents.spent(Role.PROPOSER) is None
    # Another process (an implement worker) spends through the same store.
    store.add_llm_call(
        campaign.id,
        role=Role.IMPLEMENTER,
        model="stand-in",
        template="implementer@v1",
        prompt={},
        response="",
        input_tokens=900,
        output_tokens=200,
    )
    assert "1,100 of 1,000 tokens" in (agents.spent(Role.PROPOSER) or "")
    raised = config.with_budget(dollars=None, tokens=5_000)
    store.set_campaign_limits(campaign.id, agents=raised.model_dump(mode="json"))  # as PATCH does
    assert agents.spent(Role.PROPOSER) is None
