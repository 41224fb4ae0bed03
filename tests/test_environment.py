import random
from pathlib import Path

import pytest

from autoresearch.adapters.catalog import CatalogProposer, load_catalog
from autoresearch.domain.diffs import apply_diff, make_diff
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import Idea, IdeaOrigin, Trial, TrialStatus
from autoresearch.environment import find_environment, load_environment
from autoresearch.errors import ConfigError, NotFound
from autoresearch.settings import Settings
from autoresearch.testing import ENVIRONMENTS_DIR

ROOT = Path(__file__).resolve().parents[1]
NANOGPT = ROOT / "environments" / "nanogpt"


def _write_env(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "broken"
    root.mkdir()
    (root / "train.py").write_text("print('hi')\n")
    (root / "environment.toml").write_text(text)
    return root


VALID = """
name = "broken"
description = "x"
default_preset = "p"
[metric]
name = "loss"
direction = "minimize"
[commands]
train = ["{python}", "train.py"]
evaluate = ["{python}", "evaluate.py"]
[files]
editable = ["train.py"]
[presets.p]
budget = { steps = 5 }
"""


def test_a_valid_environment_loads(tmp_path: Path) -> None:
    env = load_environment(_write_env(tmp_path, VALID))
    assert env.editable_files == ("train.py",)
    assert env.preset(None)[0] == "p"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('direction = "minimize"', 'direction = "smaller"'), r"metric\.direction: .*'smaller'"),
        (("steps = 5", "steps = -3"), r"presets\.p\.budget\.steps: .*-3"),
        (('default_preset = "p"', 'default_preset = "q"'), "default_preset 'q' is not one of"),
        (
            ('editable = ["train.py"]', 'editable = ["missing.py"]'),
            "files.editable: no file matches 'missing.py'",
        ),
        (("[presets.p]", "[presets.p]\nbogus = 1"), r"presets\.p\.bogus: Extra inputs"),
        (('name = "loss"', "name = "), "not valid TOML"),
        (
            ('"train.py"]\nevaluate', '"train.py", "{outdir}"]\nevaluate'),
            r"commands\.train: .*unknown placeholder \{outdir\}",
        ),
        (  # only the evaluator gets the training time: training could not know it
            ('"train.py"]\nevaluate', '"train.py", "{train_seconds}"]\nevaluate'),
            r"commands\.train: .*unknown placeholder \{train_seconds\}",
        ),
    ],
)
def test_a_bad_environment_file_gets_one_line_naming_file_field_and_value(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    root = _write_env(tmp_path, VALID.replace(*change))
    with pytest.raises(ConfigError, match=expected) as info:
        load_environment(root)
    message = str(info.value)
    assert message.startswith(str(root / "environment.toml"))
    assert "\n" not in message


def test_an_unknown_environment_or_preset_is_named_with_the_choices() -> None:
    search = Settings().environment_search_path
    with pytest.raises(NotFound, match=r"no environment named 'nope'.*nanogpt"):
        find_environment("nope", search)
    with pytest.raises(NotFound, match="choose from smoke, cpu, golf, gpu_small, gpu"):
        find_environment("nanogpt", search).preset("huge")


def test_nanogpt_protects_its_evaluator_and_data_and_hides_them_from_trials() -> None:
    env = load_environment(NANOGPT)
    assert env.editable_files == ("train.py",)
    assert {"evaluate.py", "data/val.txt.xz", "environment.toml"} <= set(env.protected_files)
    assert "evaluate.py" not in env.trial_files and "data/val.txt.xz" not in env.trial_files
    assert "environment.toml" in env.trial_files


@pytest.mark.parametrize(("name", "at_least"), [("nanogpt", 12), ("digits", 5), ("grpo", 7)])
def test_every_technique_of_a_shipped_environment_applies_to_its_baseline(name: str, at_least: int) -> None:
    env = load_environment(ROOT / "environments" / name)
    techniques, mutations = load_catalog(env)
    assert len(techniques) >= at_least
    assert len({t.surface for t in techniques}) >= 3
    baseline = env.read_editable()
    for technique in techniques:
        patched = apply_diff(baseline, technique.diff)
        assert patched != baseline, technique.key
        compile(patched["train.py"], f"{technique.key}.diff", "exec")
    assert mutations


def test_catalog_proposer_prefers_what_the_goal_names() -> None:
    env = load_environment(NANOGPT)
    proposer = CatalogProposer(env, goal="try rotary embeddings first", mutation_rate=0.0)
    lineage = Lineage.of(
        [Idea(id=1, campaign_id=1, hypothesis="b", origin=IdeaOrigin.BASELINE, key="baseline")],
        [
            Trial(
                id=1, campaign_id=1, number=0, idea_id=1, parent_id=None, status=TrialStatus.SUCCEEDED, seed=0
            )
        ],
    )
    proposal = proposer.propose(lineage.trials[1], env.read_editable(), lineage, random.Random(0))
    assert proposal is not None and proposal.key == "rotary"


@pytest.mark.parametrize("mutation_rate", [0.0, 1.0])
def test_catalog_proposer_leaves_out_an_entry_whose_code_a_trial_measures(mutation_rate: float) -> None:
    """A person's ideas set x to 2 and to 4 on the baseline, in other spellings than the technique move_x
    (x = 2.0) and the mutation x=4 (x = 4) use: those two would measure the same programs again."""
    env = load_environment(ENVIRONMENTS_DIR / "tiny")
    baseline = env.read_editable()

    def setting_x(value: str) -> str:
        return make_diff(baseline, {**baseline, "recipe.py": baseline["recipe.py"].replace("x = 0.0", value)})

    ideas = [Idea(id=1, campaign_id=1, hypothesis="b", origin=IdeaOrigin.BASELINE, key="baseline")]
    trials = [
        Trial(id=1, campaign_id=1, number=0, idea_id=1, parent_id=None, status=TrialStatus.SUCCEEDED, seed=0)
    ]
    for number, value in ((1, "x = 2.00  # near the optimum"), (2, "x = 0x4")):
        ideas.append(Idea(id=number + 1, campaign_id=1, hypothesis=value, origin=IdeaOrigin.USER, key=value))
        trials.append(
            Trial(
                id=number + 1,
                campaign_id=1,
                number=number,
                idea_id=number + 1,
                parent_id=1,
                status=TrialStatus.RUNNING,
                seed=0,
                code_diff=setting_x(value),
            )
        )
    lineage = Lineage.of(ideas, trials)
    proposer = CatalogProposer(env, mutation_rate=mutation_rate)
    keys = set()
    for seed in range(40):
        proposal = proposer.propose(lineage.trials[1], baseline, lineage, random.Random(seed))
        assert proposal is not None
        keys.add(proposal.key)
    expected = {"move_y"} if mutation_rate == 0.0 else {"x=1", "y=-2", "y=-0.5", "y=1"}
    assert keys == expected


def test_grpo_mutation_to_the_learning_rate_of_double_lr_is_left_out_once_double_lr_ran() -> None:
    """The technique writes 1e-4, the mutation would write 0.0001: one program."""
    env = load_environment(ROOT / "environments" / "grpo")
    baseline = env.read_editable()
    [double_lr] = [t for t in load_catalog(env)[0] if t.key == "double_lr"]
    ideas = [
        Idea(id=1, campaign_id=1, hypothesis="b", origin=IdeaOrigin.BASELINE, key="baseline"),
        Idea(
            id=2,
            campaign_id=1,
            hypothesis="d",
            origin=IdeaOrigin.CATALOG,
            key="double_lr",
            parent_trial_ids=(1,),
        ),
    ]
    trials = [
        Trial(id=1, campaign_id=1, number=0, idea_id=1, parent_id=None, status=TrialStatus.SUCCEEDED, seed=0),
        Trial(
            id=2,
            campaign_id=1,
            number=1,
            idea_id=2,
            parent_id=1,
            status=TrialStatus.SUCCEEDED,
            seed=0,
            duration_s=1.0,
            code_diff=make_diff(baseline, apply_diff(baseline, double_lr.diff)),
        ),
    ]
    lineage = Lineage.of(ideas, trials)
    proposer = CatalogProposer(env, mutation_rate=1.0)
    keys = {
        proposer.propose(lineage.trials[1], baseline, lineage, random.Random(seed)).key for seed in range(60)
    }  # type: ignore[union-attr]
    assert "learning_rate=0.0001" not in keys
    assert any(key.startswith("learning_rate=") for key in keys)  # other learning rates are still proposed
