"""The Store contract, run against every backend (SQLite and PostgreSQL) through the `store` fixture."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from autoresearch.adapters.db import SqlStore, open_store
from autoresearch.adapters.db import store as store_module
from autoresearch.domain.model import (
    Campaign,
    CampaignStatus,
    FailureLabel,
    IdeaOrigin,
    LLMCall,
    Role,
    Scope,
    Trial,
    TrialQuery,
    TrialResult,
    TrialSort,
    TrialStatus,
    Usage,
)
from autoresearch.errors import ConfigError, Conflict, NotFound, StoreError
from autoresearch.services.store import Store


def make_campaign(store: Store, name: str = "nanogpt-speedrun", **overrides: Any) -> Campaign:
    fields: dict[str, Any] = {
        "name": name,
        "environment": "tiny-lm",
        "preset": "cpu",
        "strategy": "evolve",
        "goal": "lower val_loss",
        "trial_budget": 10,
        "concurrency": 2,
        "seed": 1234,
    }
    return store.create_campaign(**(fields | overrides))


def make_trial(store: Store, campaign_id: int, parent_id: int | None = None) -> Trial:
    idea = store.add_idea(campaign_id, hypothesis="use rmsnorm", origin=IdeaOrigin.CATALOG, key="rmsnorm")
    return store.add_trial(campaign_id, idea_id=idea.id, parent_id=parent_id, seed=7)


def running_trial(store: Store, campaign_id: int) -> Trial:
    trial = make_trial(store, campaign_id)
    assert store.claim_trial(trial.id)
    return trial


# campaigns -----------------------------------------------------------------------------------


def test_created_campaign_is_found_by_name_and_by_id(store: Store) -> None:
    campaign = make_campaign(store)

    assert campaign.status is CampaignStatus.RUNNING
    assert campaign.created_at.tzinfo is not None
    assert store.get_campaign("nanogpt-speedrun") == campaign
    assert store.get_campaign(campaign.id) == campaign
    assert store.get_campaign(str(campaign.id)) == campaign


def test_a_name_made_of_digits_is_tried_as_a_name_before_an_id(store: Store) -> None:
    first = make_campaign(store, name="first")
    numbered = make_campaign(store, name=str(first.id))

    assert store.get_campaign(str(first.id)) == numbered
    assert store.get_campaign(first.id) == first


def test_campaign_name_taken_is_a_config_error(store: Store) -> None:
    make_campaign(store)

    with pytest.raises(ConfigError, match="nanogpt-speedrun"):
        make_campaign(store)
    assert len(store.list_campaigns()) == 1


def test_missing_campaign_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="nope"):
        store.get_campaign("nope")
    with pytest.raises(NotFound, match="999"):
        store.get_campaign(999)
    with pytest.raises(NotFound, match="999"):
        store.get_campaign("999")


def test_campaigns_are_listed_newest_first(store: Store) -> None:
    names = ["a", "b", "c"]
    for name in names:
        make_campaign(store, name=name)

    assert [c.name for c in store.list_campaigns()] == names[::-1]


def test_campaign_status_changes(store: Store) -> None:
    campaign = make_campaign(store)

    store.set_campaign_status(campaign.id, CampaignStatus.STOPPED)

    assert store.get_campaign(campaign.id).status is CampaignStatus.STOPPED
    with pytest.raises(NotFound):
        store.set_campaign_status(999, CampaignStatus.STOPPED)


def test_campaign_limits_change_only_what_is_given(store: Store) -> None:
    campaign = make_campaign(store)

    raised = store.set_campaign_limits(campaign.id, trial_budget=50)
    assert (raised.trial_budget, raised.concurrency) == (50, 2)
    widened = store.set_campaign_limits(campaign.id, concurrency=4)
    assert (widened.trial_budget, widened.concurrency) == (50, 4)
    assert store.set_campaign_limits(campaign.id) == widened
    assert store.get_campaign(campaign.id) == widened
    with pytest.raises(NotFound):
        store.set_campaign_limits(999, concurrency=1)


def test_seed_beyond_32_bits_round_trips(store: Store) -> None:
    campaign = make_campaign(store, seed=2**40 + 3)

    assert store.get_campaign(campaign.id).seed == 2**40 + 3


# ideas ---------------------------------------------------------------------------------------


def test_idea_round_trips_with_its_parents(store: Store) -> None:
    campaign = make_campaign(store)
    a = make_trial(store, campaign.id)
    b = make_trial(store, campaign.id)

    idea = store.add_idea(
        campaign.id,
        hypothesis="cross rmsnorm with a longer warmup",
        origin=IdeaOrigin.MUTATION,
        surface="model.py",
        key="warmup*2",
        parent_trial_ids=[a.id, b.id],
        diff="--- a/train.py\n+++ b/train.py\n",
    )

    assert idea.parent_trial_ids == (a.id, b.id)
    assert store.get_idea(idea.id) == idea


def test_ideas_are_listed_per_campaign_in_order_of_creation(store: Store) -> None:
    campaign = make_campaign(store)
    other = make_campaign(store, name="other")
    first = store.add_idea(campaign.id, hypothesis="baseline", origin=IdeaOrigin.BASELINE)
    store.add_idea(other.id, hypothesis="elsewhere", origin=IdeaOrigin.USER)
    second = store.add_idea(campaign.id, hypothesis="rmsnorm", origin=IdeaOrigin.CATALOG, key="rmsnorm")

    assert store.list_ideas(campaign.id) == [first, second]
    assert store.list_ideas(make_campaign(store, name="empty").id) == []


def test_idea_for_a_missing_campaign_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="999"):
        store.add_idea(999, hypothesis="x", origin=IdeaOrigin.USER)
    with pytest.raises(NotFound, match="999"):
        store.get_idea(999)
    with pytest.raises(NotFound, match="999"):
        store.list_ideas(999)


# trials --------------------------------------------------------------------------------------


def test_trials_are_numbered_from_zero_within_each_campaign(store: Store) -> None:
    first = make_campaign(store, name="first")
    second = make_campaign(store, name="second")

    numbers_first = [make_trial(store, first.id).number for _ in range(3)]
    numbers_second = [make_trial(store, second.id).number for _ in range(2)]

    assert numbers_first == [0, 1, 2]
    assert numbers_second == [0, 1]
    assert store.get_trial_by_number(first.id, 2).campaign_id == first.id


def test_new_trial_is_pending_with_its_lineage(store: Store) -> None:
    campaign = make_campaign(store)
    baseline = make_trial(store, campaign.id)
    child = make_trial(store, campaign.id, parent_id=baseline.id)
    diff = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-lr = 1e-3\n+lr = 2e-3\n"
    retry = store.add_trial(
        campaign.id, idea_id=child.idea_id, parent_id=baseline.id, seed=8, code_diff=diff, retry_of=child.id
    )

    assert child.status is TrialStatus.PENDING
    assert child.parent_id == baseline.id
    assert (retry.retry_of, retry.seed, retry.number, retry.code_diff) == (child.id, 8, 2, diff)
    assert child.code_diff == ""
    assert child.created_at is not None and child.started_at is None and child.finished_at is None
    assert store.get_trial(child.id) == child


def test_trial_with_a_missing_reference_is_not_found(store: Store) -> None:
    campaign = make_campaign(store)
    idea = store.add_idea(campaign.id, hypothesis="x", origin=IdeaOrigin.USER)

    with pytest.raises(NotFound, match="campaign"):
        store.add_trial(999, idea_id=idea.id, parent_id=None, seed=0)
    with pytest.raises(NotFound, match="idea"):
        store.add_trial(campaign.id, idea_id=999, parent_id=None, seed=0)
    with pytest.raises(NotFound, match="parent"):
        store.add_trial(campaign.id, idea_id=idea.id, parent_id=999, seed=0)
    assert store.count_trials(campaign.id) == {}


def test_trial_is_claimed_once(store: Store) -> None:
    trial = make_trial(store, make_campaign(store).id)

    assert store.claim_trial(trial.id) is not None
    assert store.claim_trial(trial.id) is None
    claimed = store.get_trial(trial.id)
    assert claimed.status is TrialStatus.RUNNING
    assert claimed.started_at is not None and claimed.started_at.tzinfo is not None


def test_concurrent_claims_have_one_winner(store: Store) -> None:
    trial = make_trial(store, make_campaign(store).id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        leases = list(pool.map(lambda n: store.claim_trial(trial.id, worker=f"w{n}", lease_s=30), range(8)))

    [won] = [lease for lease in leases if lease is not None]
    assert store.get_trial(trial.id).worker == won.worker and won.token == 1


def test_concurrent_new_trials_get_distinct_numbers(store: Store) -> None:
    campaign = make_campaign(store)
    ideas = [store.add_idea(campaign.id, hypothesis=f"x{n}", origin=IdeaOrigin.USER) for n in range(30)]

    def add_five(batch: int) -> list[int]:
        return [
            store.add_trial(campaign.id, idea_id=idea.id, parent_id=None, seed=0).number
            for idea in ideas[batch * 5 : batch * 5 + 5]
        ]

    with ThreadPoolExecutor(max_workers=6) as pool:
        numbers = [n for batch in pool.map(add_five, range(6)) for n in batch]

    assert sorted(numbers) == list(range(30))


def test_running_trial_finishes_with_its_score_and_metrics(store: Store) -> None:
    trial = running_trial(store, make_campaign(store).id)
    metrics = {"val_loss": 3.2812345678901234, "tokens_per_s": 1.5e6, "params": 124_000_000.0}

    result = TrialResult.scored(
        3.2812345678901234,
        metrics=metrics,
        exit_code=0,
        duration_s=12.25,
        log_tail="---\nval_loss: 3.28\n",
        code_hash="abc123",
    )
    finished = store.finish_trial(trial.id, result)

    done = store.get_trial(trial.id)
    assert finished == done  # the returned trial is what was recorded
    assert done.status is TrialStatus.SUCCEEDED and done.label is None
    assert done.score == 3.2812345678901234
    assert dict(done.metrics) == metrics
    assert (done.exit_code, done.duration_s, done.log_tail, done.code_hash) == (
        0,
        12.25,
        "---\nval_loss: 3.28\n",
        "abc123",
    )
    assert done.started_at is not None and done.finished_at is not None
    assert done.started_at <= done.finished_at
    assert abs(done.finished_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_metrics_that_are_not_finite_round_trip(store: Store) -> None:
    trial = running_trial(store, make_campaign(store).id)
    metrics = {"val_loss": math.nan, "grad_norm": math.inf, "margin": -math.inf}

    store.finish_trial(trial.id, TrialResult.failed(FailureLabel.CRASH, "loss diverged", metrics=metrics))

    stored = store.get_trial(trial.id).metrics
    assert math.isnan(stored["val_loss"])
    assert stored["grad_norm"] == math.inf and stored["margin"] == -math.inf


def test_finished_trial_is_not_overwritten(store: Store) -> None:
    trial = running_trial(store, make_campaign(store).id)
    assert store.finish_trial(trial.id, TrialResult.scored(1.0)) is not None

    assert store.finish_trial(trial.id, TrialResult.scored(2.0)) is None
    assert store.finish_trial(trial.id, TrialResult.failed(FailureLabel.WORKER_LOST, "late")) is None
    assert store.claim_trial(trial.id) is None
    kept = store.get_trial(trial.id)
    assert (kept.status, kept.score, kept.label) == (TrialStatus.SUCCEEDED, 1.0, None)


def test_pending_trial_may_fail_before_running(store: Store) -> None:
    trial = make_trial(store, make_campaign(store).id)

    result = TrialResult.failed(FailureLabel.PATCH_FAILED, "hunk 2 did not apply")
    assert store.finish_trial(trial.id, result) is not None

    failed = store.get_trial(trial.id)
    assert (failed.status, failed.label, failed.reason) == (
        TrialStatus.FAILED,
        FailureLabel.PATCH_FAILED,
        "hunk 2 did not apply",
    )
    assert failed.started_at is None and failed.finished_at is not None


def test_pending_trial_cannot_succeed_without_running(store: Store) -> None:
    trial = make_trial(store, make_campaign(store).id)

    assert store.finish_trial(trial.id, TrialResult.scored(1.0)) is None
    assert store.get_trial(trial.id).status is TrialStatus.PENDING


def test_moving_a_missing_trial_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="999"):
        store.claim_trial(999)
    with pytest.raises(NotFound, match="999"):
        store.finish_trial(999, TrialResult.scored(1.0))
    with pytest.raises(NotFound, match="999"):
        store.get_trial(999)


def test_interrupt_moves_only_unfinished_trials_and_labels_them(store: Store) -> None:
    campaign = make_campaign(store)
    other = make_campaign(store, name="other")
    done = running_trial(store, campaign.id)
    store.finish_trial(done.id, TrialResult.scored(1.0))
    running = running_trial(store, campaign.id)
    pending = make_trial(store, campaign.id)
    elsewhere = make_trial(store, other.id)

    moved = store.interrupt_unfinished(campaign.id, FailureLabel.CANCELLED, "stopped by the user")

    assert [t.id for t in moved] == [running.id, pending.id]
    for trial in moved:
        assert trial == store.get_trial(trial.id)
        assert (trial.status, trial.label, trial.reason) == (
            TrialStatus.INTERRUPTED,
            FailureLabel.CANCELLED,
            "stopped by the user",
        )
        assert trial.finished_at is not None
    assert store.get_trial(done.id).status is TrialStatus.SUCCEEDED
    assert store.get_trial(elsewhere.id).status is TrialStatus.PENDING
    assert store.interrupt_unfinished(campaign.id, FailureLabel.WORKER_LOST, "again") == []


def test_interrupt_refuses_a_label_that_blames_the_candidate(store: Store) -> None:
    campaign = make_campaign(store)

    with pytest.raises(ValueError, match="crash"):
        store.interrupt_unfinished(campaign.id, FailureLabel.CRASH, "no")


def test_trials_are_counted_by_status(store: Store) -> None:
    campaign = make_campaign(store)
    store.finish_trial(running_trial(store, campaign.id).id, TrialResult.scored(1.0))
    store.finish_trial(running_trial(store, campaign.id).id, TrialResult.scored(2.0))
    running_trial(store, campaign.id)
    make_trial(store, campaign.id)

    assert store.count_trials(campaign.id) == {
        TrialStatus.SUCCEEDED: 2,
        TrialStatus.RUNNING: 1,
        TrialStatus.PENDING: 1,
    }
    assert store.count_trials(make_campaign(store, name="empty").id) == {}


def test_trials_are_listed_by_number_and_filtered_by_status(store: Store) -> None:
    campaign = make_campaign(store)
    trials = [make_trial(store, campaign.id) for _ in range(4)]
    store.claim_trial(trials[1].id)
    store.claim_trial(trials[3].id)

    assert [t.number for t in store.list_trials(campaign.id)] == [0, 1, 2, 3]
    assert [t.number for t in store.list_trials(campaign.id, statuses={TrialStatus.RUNNING})] == [1, 3]
    both = store.list_trials(campaign.id, statuses=[TrialStatus.PENDING, TrialStatus.RUNNING])
    assert [t.number for t in both] == [0, 1, 2, 3]
    assert store.list_trials(campaign.id, statuses=[TrialStatus.FAILED]) == []
    assert store.list_trials(campaign.id, statuses=[]) == []


def test_campaign_scoped_queries_on_a_missing_campaign_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.list_trials(999)
    with pytest.raises(NotFound):
        store.count_trials(999)
    with pytest.raises(NotFound):
        store.get_trial_by_number(999, 0)
    with pytest.raises(NotFound):
        store.interrupt_unfinished(999, FailureLabel.CANCELLED, "x")
    with pytest.raises(NotFound, match="no trial number 5"):
        store.get_trial_by_number(make_campaign(store).id, 5)


# patches -------------------------------------------------------------------------------------


def test_patches_are_listed_in_attempt_order(store: Store) -> None:
    trial = make_trial(store, make_campaign(store).id)
    second = store.add_patch(trial.id, attempt=2, diff="+b", applied=True, files=["train.py", "model.py"])
    first = store.add_patch(trial.id, attempt=1, diff="+a", applied=False, error="hunk 1 failed")

    assert store.list_patches(trial.id) == [first, second]
    assert second.files == ("train.py", "model.py")
    assert (first.applied, first.error) == (False, "hunk 1 failed")
    assert store.list_patches(make_trial(store, trial.campaign_id).id) == []


def test_patch_for_a_missing_trial_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="999"):
        store.add_patch(999, attempt=1, diff="", applied=False)
    with pytest.raises(NotFound, match="999"):
        store.list_patches(999)


# opening a store -----------------------------------------------------------------------------


def test_unreachable_postgres_is_a_one_line_store_error_without_the_password() -> None:
    url = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/autoresearch"

    with pytest.raises(StoreError) as caught:
        open_store(url)

    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "s3cret" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    ["not a url", "nosuchdialect://x/y", "sqlite://", "sqlite:///:memory:"],
)
def test_bad_database_url_is_a_store_error(url: str) -> None:
    with pytest.raises(StoreError):
        open_store(url)


def test_sqlite_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "autoresearch.db"

    opened = open_store(f"sqlite:///{path}")
    try:
        assert isinstance(opened, SqlStore)
        assert path.is_file()
        assert opened.list_campaigns() == []
    finally:
        opened.close()


# LLM calls -----------------------------------------------------------------------------------


def record_call(store: Store, campaign_id: int, role: Role, **overrides: Any) -> LLMCall:
    fields: dict[str, Any] = {
        "role": role,
        "model": "anthropic:claude-sonnet-4-5",
        "template": f"{role}@v1",
        "prompt": {"system": "s", "messages": [{"role": "user", "content": "u"}]},
        "response": "r",
        "input_tokens": 1000,
        "output_tokens": 100,
        "cached_tokens": 600,
        "dollars": 0.0042,
    }
    return store.add_llm_call(campaign_id, **(fields | overrides))


def test_llm_calls_are_recorded_as_sent_and_summed_per_role(store: Store) -> None:
    campaign = make_campaign(store)
    first = record_call(store, campaign.id, Role.PROPOSER)
    record_call(
        store, campaign.id, Role.PROPOSER, dollars=None, input_tokens=10, output_tokens=5, cached_tokens=0
    )
    record_call(store, campaign.id, Role.IMPLEMENTER, dollars=0.01)

    assert store.get_llm_call(first.id) == first
    assert first.prompt["messages"][0]["content"] == "u" and first.usage.calls == 1
    usage = store.llm_usage(campaign.id)
    assert usage[Role.PROPOSER] == Usage(
        calls=2, input_tokens=1010, output_tokens=105, cached_tokens=600, dollars=0.0042, unpriced_calls=1
    )
    assert usage[Role.IMPLEMENTER].dollars == pytest.approx(0.01)
    assert Role.ANALYST not in usage
    assert store.llm_usage(make_campaign(store, "other").id) == {}


def test_llm_calls_are_listed_by_idea_and_by_trial_and_can_be_rejected(store: Store) -> None:
    campaign = make_campaign(store)
    proposal = record_call(store, campaign.id, Role.PROPOSER)
    idea = store.add_idea(
        campaign.id, hypothesis="h", origin=IdeaOrigin.LLM, rationale="why", llm_call_id=proposal.id
    )
    trial = store.add_trial(campaign.id, idea_id=idea.id, parent_id=None, seed=1)
    patch_call = record_call(store, campaign.id, Role.IMPLEMENTER, idea_id=idea.id)
    note = record_call(store, campaign.id, Role.ANALYST, trial_id=trial.id)
    store.reject_llm_call(proposal.id, "invalid JSON")
    store.add_patch(trial.id, attempt=1, diff="d", applied=True, llm_call_id=patch_call.id)
    store.set_trial_analysis(trial.id, "it helped")

    assert store.get_idea(idea.id).llm_call_id == proposal.id and store.get_idea(idea.id).rationale == "why"
    assert [c.id for c in store.list_llm_calls(campaign.id, idea_id=idea.id)] == [patch_call.id]
    assert [c.id for c in store.list_llm_calls(campaign.id, trial_id=trial.id)] == [note.id]
    assert len(store.list_llm_calls(campaign.id)) == 3
    assert store.get_llm_call(proposal.id).error == "invalid JSON"
    assert store.list_patches(trial.id)[0].llm_call_id == patch_call.id
    assert store.get_trial(trial.id).analysis == "it helped"
    with pytest.raises(NotFound):
        store.get_llm_call(10_000)
    with pytest.raises(NotFound):
        store.set_trial_analysis(10_000, "x")


def test_a_dropped_duplicate_idea_names_the_idea_it_repeats(store: Store) -> None:
    campaign = make_campaign(store)
    original = store.add_idea(campaign.id, hypothesis="use rope", origin=IdeaOrigin.LLM)
    copy = store.add_idea(campaign.id, hypothesis="use RoPE", origin=IdeaOrigin.LLM, duplicate_of=original.id)
    assert store.get_idea(copy.id).duplicate_of == original.id
    with pytest.raises(NotFound):
        store.add_idea(campaign.id, hypothesis="x", origin=IdeaOrigin.LLM, duplicate_of=10_000)


def test_a_campaign_keeps_its_agents_config(store: Store) -> None:
    agents = {"proposer": "openai:gpt-5", "budget": {"dollars": 2.5, "tokens": None}}
    campaign = make_campaign(store, agents=agents)
    assert store.get_campaign(campaign.id).agents == agents
    assert make_campaign(store, "plain").agents == {}
    more = agents | {"budget": {"dollars": 10.0, "tokens": None}}
    assert store.set_campaign_limits(campaign.id, agents=more).agents == more
    assert store.set_campaign_limits(campaign.id, trial_budget=3).agents == more


# leases --------------------------------------------------------------------------------------


def test_a_claim_is_a_lease_with_a_fencing_token_and_an_expiry(store: Store) -> None:
    trial = make_trial(store, make_campaign(store).id)
    before = datetime.now(UTC)
    lease = store.claim_trial(trial.id, worker="gpu-box-1:4242", lease_s=30)
    assert lease is not None and lease.token == 1 and lease.worker == "gpu-box-1:4242"
    assert lease.expires_at is not None and before + timedelta(seconds=29) < lease.expires_at
    assert store.claim_trial(trial.id, worker="other", lease_s=30) is None
    stored = store.get_trial(trial.id)
    assert (stored.worker, stored.lease_token, stored.lease_expires_at) == (
        "gpu-box-1:4242",
        1,
        lease.expires_at,
    )


def test_a_heartbeat_extends_only_the_current_lease(store: Store) -> None:
    trial = make_trial(store, make_campaign(store).id)
    lease = store.claim_trial(trial.id, worker="w", lease_s=5)
    assert lease is not None and lease.expires_at is not None
    assert store.renew_lease(trial.id, lease.token, 60)
    renewed = store.get_trial(trial.id).lease_expires_at
    assert renewed is not None and renewed > lease.expires_at + timedelta(seconds=50)
    assert not store.renew_lease(trial.id, lease.token + 1, 60)
    store.finish_trial(trial.id, TrialResult.scored(1.0), token=lease.token)
    assert not store.renew_lease(trial.id, lease.token, 60)  # finished: nothing to renew


def test_an_expired_lease_makes_the_trial_worker_lost_and_its_late_result_is_refused(store: Store) -> None:
    campaign = make_campaign(store)
    leased, unleased = make_trial(store, campaign.id), make_trial(store, campaign.id)
    lease = store.claim_trial(leased.id, worker="w", lease_s=10)
    assert lease is not None and store.claim_trial(unleased.id)  # the local controller: no expiry
    assert store.expire_leases() == []
    [lost] = store.expire_leases(now=datetime.now(UTC) + timedelta(seconds=11))
    assert lost.id == leased.id and lost.label is FailureLabel.WORKER_LOST
    assert lost.status is TrialStatus.INTERRUPTED
    assert store.finish_trial(leased.id, TrialResult.scored(0.5), token=lease.token) is None
    assert store.get_trial(unleased.id).status is TrialStatus.RUNNING


def test_a_result_under_a_stale_fencing_token_is_refused(store: Store) -> None:
    trial = make_trial(store, make_campaign(store).id)
    lease = store.claim_trial(trial.id, worker="w", lease_s=30)
    assert lease is not None
    assert store.finish_trial(trial.id, TrialResult.scored(2.0), token=lease.token - 1) is None
    finished = store.finish_trial(trial.id, TrialResult.scored(3.0), token=lease.token)
    assert finished is not None and finished.score == 3.0


def test_an_idea_is_implemented_once_but_retried_any_number_of_times(store: Store) -> None:
    campaign = make_campaign(store)
    first = make_trial(store, campaign.id)
    assert store.first_trial_of(first.idea_id) == first
    with pytest.raises(Conflict, match="already has its trial"):
        store.add_trial(campaign.id, idea_id=first.idea_id, parent_id=None, seed=7)
    retries = [
        store.add_trial(campaign.id, idea_id=first.idea_id, parent_id=None, seed=7, retry_of=first.id)
        for _ in range(2)
    ]
    assert [r.retry_of for r in retries] == [first.id, first.id]
    assert store.first_trial_of(first.idea_id) == first
    lone = store.add_idea(campaign.id, hypothesis="not yet implemented", origin=IdeaOrigin.USER)
    assert store.first_trial_of(lone.id) is None


def test_one_controller_holds_a_campaign_until_its_lease_expires_or_is_released(store: Store) -> None:
    campaign = make_campaign(store)
    token = store.claim_campaign(campaign.id, controller="a:1", lease_s=30)
    assert token is not None
    assert store.get_campaign(campaign.id).controller == "a:1"
    assert store.claim_campaign(campaign.id, controller="b:2", lease_s=30) is None
    assert store.renew_campaign(campaign.id, token, 30)
    store.release_campaign(campaign.id, token)
    assert store.get_campaign(campaign.id).controller == ""
    taken = store.claim_campaign(campaign.id, controller="b:2", lease_s=0.05)
    assert taken is not None and taken > token
    assert not store.renew_campaign(campaign.id, token, 30)  # the old holder lost it
    time.sleep(0.1)
    retaken = store.claim_campaign(campaign.id, controller="c:3", lease_s=30)  # b's lease ran out
    assert retaken is not None and retaken > taken
    with pytest.raises(NotFound):
        store.claim_campaign(999, controller="a:1", lease_s=30)


def test_expiring_leases_in_one_campaign_leaves_the_others(store: Store) -> None:
    mine, other = make_campaign(store), make_campaign(store, name="other")
    trials = [make_trial(store, mine.id), make_trial(store, other.id)]
    for trial in trials:
        assert store.claim_trial(trial.id, worker="w", lease_s=1) is not None
    later = datetime.now(UTC) + timedelta(seconds=2)
    assert [t.id for t in store.expire_leases(later, campaign_id=mine.id)] == [trials[0].id]
    assert store.get_trial(trials[1].id).status is TrialStatus.RUNNING


def test_workers_register_beat_and_leave(store: Store) -> None:
    store.register_worker("gpu-1:10", queues=["gpu"], capacity={"slots": 8, "gpus": [{"index": "0"}]})
    store.register_worker("cpu-1:11", queues=["cpu", "implement"], capacity={"slots": 1})
    [cpu, gpu] = store.list_workers()
    assert (cpu.name, cpu.queues, gpu.capacity["slots"]) == ("cpu-1:11", ("cpu", "implement"), 8)
    time.sleep(0.01)
    store.worker_heartbeat("gpu-1:10")
    assert store.list_workers()[1].heartbeat_at > gpu.heartbeat_at
    store.register_worker("gpu-1:10", queues=["gpu"], capacity={"slots": 4})  # restarted, fewer slots
    assert store.list_workers()[1].capacity == {"slots": 4}
    store.forget_worker("cpu-1:11")
    assert [w.name for w in store.list_workers()] == ["gpu-1:10"]


def scored_trials(store: Store, campaign_id: int, scores: list[float | None]) -> list[Trial]:
    trials = []
    for score in scores:
        trial = make_trial(store, campaign_id)
        assert store.claim_trial(trial.id) is not None
        result = (
            TrialResult.scored(score) if score is not None else TrialResult.failed(FailureLabel.CRASH, "x")
        )
        finished = store.finish_trial(trial.id, result)
        assert finished is not None
        trials.append(finished)
    return trials


def test_pages_of_trials_filter_sort_and_resume_at_their_cursor(store: Store) -> None:
    campaign = make_campaign(store)
    trials = scored_trials(store, campaign.id, [3.0, None, 1.0, 2.0, 1.0, None, 5.0])
    pending = make_trial(store, campaign.id)

    def walk(query: TrialQuery) -> list[int]:
        numbers, page = [], store.page_trials(campaign.id, query)
        while True:
            numbers += [t.number for t in page.trials]
            if page.next is None:
                return numbers
            page = store.page_trials(campaign.id, replace(query, after=page.next))

    assert walk(TrialQuery(limit=3)) == [t.number for t in [*trials, pending]]
    assert walk(TrialQuery(sort=TrialSort.NUMBER_DESC, limit=2)) == [pending.number] + [
        t.number for t in reversed(trials)
    ]
    by_score = [trials[i].number for i in (2, 4, 3, 0, 6)]  # ties broken by number
    assert walk(TrialQuery(sort=TrialSort.SCORE, limit=2)) == by_score
    assert walk(TrialQuery(sort=TrialSort.SCORE_DESC, limit=1)) == [trials[i].number for i in (6, 0, 3, 2, 4)]
    assert walk(TrialQuery(statuses=(TrialStatus.FAILED,))) == [trials[1].number, trials[5].number]
    assert walk(TrialQuery(labels=(FailureLabel.CRASH,), limit=1)) == [trials[1].number, trials[5].number]
    assert walk(TrialQuery(min_score=1.5, max_score=3.0)) == [trials[0].number, trials[3].number]
    with pytest.raises(ConfigError, match="not a cursor"):
        store.page_trials(campaign.id, TrialQuery(after="garbage"))
    with pytest.raises(NotFound):
        store.page_trials(999, TrialQuery())


def test_ancestors_run_from_the_root_to_the_parent(store: Store) -> None:
    campaign = make_campaign(store)
    root = make_trial(store, campaign.id)
    child = make_trial(store, campaign.id, parent_id=root.id)
    grandchild = make_trial(store, campaign.id, parent_id=child.id)
    chain = store.ancestors(campaign.id, grandchild.number)
    assert [(t.id, t.number, t.parent) for t in chain] == [(root.id, 0, None), (child.id, 1, 0)]
    assert store.ancestors(campaign.id, root.number) == []
    with pytest.raises(NotFound):
        store.ancestors(campaign.id, 999)


def test_every_state_a_trial_enters_is_an_event_in_order(store: Store) -> None:
    campaign = make_campaign(store)
    trial = make_trial(store, campaign.id)
    lease = store.claim_trial(trial.id, worker="w", lease_s=30)
    assert lease is not None
    store.finish_trial(trial.id, TrialResult.scored(1.0), token=lease.token)
    other = make_trial(store, campaign.id)
    store.interrupt_unfinished(campaign.id, FailureLabel.CANCELLED, "stopped")
    events = store.trial_events(campaign.id)
    assert [(e.trial_id, e.status) for e in events] == [
        (trial.id, TrialStatus.PENDING),
        (trial.id, TrialStatus.RUNNING),
        (trial.id, TrialStatus.SUCCEEDED),
        (other.id, TrialStatus.PENDING),
        (other.id, TrialStatus.INTERRUPTED),
    ]
    assert [e.id for e in store.trial_events(campaign.id, after=events[2].id)] == [e.id for e in events[3:]]
    quiet = make_campaign(store, name="quiet")
    assert store.trial_events(quiet.id) == [] and store.last_event_id(quiet.id) == 0
    assert store.last_event_id(campaign.id) == events[-1].id


def test_a_trial_is_pinned_and_vetoed_on_request(store: Store) -> None:
    trial = make_trial(store, make_campaign(store).id)
    assert (trial.pinned, trial.vetoed) == (False, False)
    assert store.set_trial_flags(trial.id, pinned=True).pinned
    vetoed = store.set_trial_flags(trial.id, vetoed=True)
    assert (vetoed.pinned, vetoed.vetoed) == (True, True)
    assert store.set_trial_flags(trial.id) == vetoed
    with pytest.raises(NotFound):
        store.set_trial_flags(999, pinned=True)


def test_tokens_are_found_by_hash_until_revoked(store: Store) -> None:
    token = store.add_token(name="ci", scope=Scope.WRITE, token_hash="h1", prefix="ar_abc")
    assert store.token_by_hash("h1") == token and store.token_by_hash("h2") is None
    revoked = store.revoke_token(token.id)
    assert revoked.revoked_at is not None and store.token_by_hash("h1") is None
    assert store.list_tokens() == [revoked]
    with pytest.raises(NotFound):
        store.revoke_token(999)


def test_a_campaign_moves_only_from_the_statuses_given(store: Store) -> None:
    campaign = make_campaign(store)
    paused = store.move_campaign(
        campaign.id, sources=(CampaignStatus.RUNNING,), target=CampaignStatus.STOPPED
    )
    assert paused is not None and paused.status is CampaignStatus.STOPPED
    assert (
        store.move_campaign(campaign.id, sources=(CampaignStatus.RUNNING,), target=CampaignStatus.FINISHED)
        is None
    )
    assert store.get_campaign(campaign.id).status is CampaignStatus.STOPPED
    with pytest.raises(NotFound):
        store.move_campaign(999, sources=(CampaignStatus.RUNNING,), target=CampaignStatus.STOPPED)


def test_lineage_entries_give_numbers_titles_and_flags_in_one_read(store: Store) -> None:
    campaign = make_campaign(store)
    root = make_trial(store, campaign.id)
    child = make_trial(store, campaign.id, parent_id=root.id)
    retry = store.add_trial(campaign.id, idea_id=child.idea_id, parent_id=root.id, seed=7, retry_of=child.id)
    store.set_trial_flags(child.id, vetoed=True)
    entries = store.lineage_entries(campaign.id)
    assert [(e.number, e.parent, e.retry_of) for e in entries] == [(0, None, None), (1, 0, None), (2, 0, 1)]
    assert entries[1].title == "rmsnorm: use rmsnorm" and entries[1].vetoed and not entries[0].vetoed
    assert retry.number == 2 and store.lineage_entries(make_campaign(store, name="empty").id) == []


@pytest.mark.postgres
def test_a_connection_the_server_dropped_is_replaced_once_it_sat_idle(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(postgres_url)
    campaign = make_campaign(store)

    admin = create_engine(postgres_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    def drop_connections() -> None:
        """The server ends every session of the store's (the pool keeps one, idle): a restart, as the
        pool sees it."""
        store.get_campaign(campaign.id)
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )

    try:
        monkeypatch.setattr(store_module, "PING_AFTER_IDLE_S", 3600.0)  # in steady use: not checked
        drop_connections()
        with pytest.raises(StoreError):
            store.get_campaign(campaign.id)

        monkeypatch.setattr(store_module, "PING_AFTER_IDLE_S", 0.0)  # idle: checked, and replaced
        drop_connections()
        assert store.get_campaign(campaign.id) == campaign
    finally:
        store.close()
        admin.dispose()
