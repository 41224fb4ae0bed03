import random

import pytest

from autoresearch.domain.diffs import make_diff
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import (
    TRIAL_TRANSITIONS,
    Direction,
    FailureLabel,
    Idea,
    IdeaOrigin,
    IllegalTransition,
    Trial,
    TrialResult,
    TrialStatus,
    check_transition,
)
from autoresearch.domain.programs import Programs, program_of
from autoresearch.domain.strategies import BestOfN, Evolve, Population, RandomParent


def test_terminal_states_have_no_way_out() -> None:
    for status in TrialStatus:
        for target in TrialStatus:
            if status.is_terminal:
                with pytest.raises(IllegalTransition):
                    check_transition(1, status, target)
            elif target in TRIAL_TRANSITIONS[status]:
                check_transition(1, status, target)


def test_a_pending_trial_cannot_succeed_without_running() -> None:
    with pytest.raises(IllegalTransition, match="pending to succeeded"):
        check_transition(3, TrialStatus.PENDING, TrialStatus.SUCCEEDED)


def test_failures_of_the_candidate_and_of_the_service_are_counted_apart() -> None:
    assert TrialResult.failed(FailureLabel.CRASH, "boom").status is TrialStatus.FAILED
    assert TrialResult.failed(FailureLabel.WORKER_LOST, "gone").status is TrialStatus.INTERRUPTED
    assert TrialResult.failed(FailureLabel.CANCELLED, "ctrl-c").status is TrialStatus.INTERRUPTED
    with pytest.raises(ValueError):
        TrialResult(status=TrialStatus.SUCCEEDED)  # no score
    with pytest.raises(ValueError):
        TrialResult.scored(float("nan"))
    with pytest.raises(ValueError):
        TrialResult(status=TrialStatus.FAILED, label=FailureLabel.WORKER_LOST)


def test_population_ranks_by_the_metric_direction() -> None:
    low = Population(Direction.MINIMIZE, baseline_id=0)
    high = Population(Direction.MAXIMIZE, baseline_id=0)
    for trial_id, score in [(1, 3.0), (2, 1.0), (3, 2.0)]:
        low.add(trial_id, score)
        high.add(trial_id, score)
    assert low.ranked() == [2, 3, 1]
    assert high.ranked() == [1, 3, 2]


def test_strategies_pick_parents_as_documented() -> None:
    population = Population(Direction.MINIMIZE, baseline_id=0)
    rng = random.Random(0)
    assert Evolve().choose_parent(population, rng) == 0  # nothing scored yet: the baseline
    for trial_id in range(1, 21):
        population.add(trial_id, float(trial_id))
    assert {BestOfN().choose_parent(population, rng) for _ in range(50)} == {0}
    picks = [Evolve(explore=0.0).choose_parent(population, rng) for _ in range(200)]
    assert set(picks) <= {1, 2, 3}  # tournaments among the elite; the worst of the 4 never wins a pair
    assert picks.count(1) > picks.count(3)
    assert len({RandomParent().choose_parent(population, rng) for _ in range(200)}) > 10


def _trial(trial_id: int, parent: int | None, idea: int) -> Trial:
    return Trial(
        id=trial_id,
        campaign_id=1,
        number=trial_id,
        idea_id=idea,
        parent_id=parent,
        status=TrialStatus.PENDING,
        seed=0,
    )


def test_lineage_tracks_what_each_line_of_descent_has_tried() -> None:
    parents: list[tuple[int, ...]] = [(), (0,), (1,), (0,), (2,)]
    ideas = [
        Idea(id=i, campaign_id=1, hypothesis=k, origin=IdeaOrigin.CATALOG, key=k, parent_trial_ids=parents[i])
        for i, k in enumerate("abcde")
    ]
    lineage = Lineage.of(ideas, [_trial(0, None, 0), _trial(1, 0, 1), _trial(2, 1, 2), _trial(3, 0, 3)])
    assert lineage.ancestry_keys(2) == {"a", "b", "c"}
    assert lineage.tried_on(0) == {"b", "d"}
    assert lineage.tried_on(2) == {"e"}  # proposed, not yet implemented: trying it again would repeat it
    assert [t.id for t in lineage.ancestors(2)] == [1, 0]
    assert lineage.children(0) == [1, 3]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("lr = 1e-4\n", "lr = 0.0001  # doubled\n", True),  # comments and the spelling of numbers
        ("f(a,b)\n", "f(\n    a,\n    b,\n)\n", True),  # layout
        ("lr = 2\n", "lr = 2.0\n", False),  # an int is not a float
        ("lr = 1e-4\n", "lr = 1e-3\n", False),
        ("def f(:\n", "def f(: \n", False),  # not Python: compared as text
        ("x = " + "-" * 5000 + "1\n", "x = " + "-" * 5000 + "1  # deep\n", False),  # past the recursion limit
    ],
)
def test_two_codes_are_one_program_when_only_comments_layout_or_number_spelling_differ(
    a: str, b: str, same: bool
) -> None:
    assert (program_of({"train.py": a}) == program_of({"train.py": b})) is same
    assert program_of({"train.py": a}) != program_of({"other.py": a})  # the file's name counts
    assert (program_of({"notes.txt": a}) == program_of({"notes.txt": b})) is (a == b)  # not Python: text


def test_a_diff_that_no_longer_applies_to_the_baseline_is_compared_as_written() -> None:
    old, new = {"train.py": "lr = 1\n"}, {"train.py": "lr = 2\n"}
    diff = make_diff(old, new)
    assert Programs(old).of_diff(diff) == program_of(new) and Programs(old).of_diff("") == program_of(old)
    edited = Programs({"train.py": "lr = 3\n"})  # the environment's recipe was edited since
    assert (
        edited.of_diff(diff)
        == edited.of_diff(diff)
        != edited.of_diff(make_diff(old, {"train.py": "lr = 4\n"}))
    )
