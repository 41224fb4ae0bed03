import random
import shutil
from pathlib import Path

import pytest

from autoresearch.adapters.catalog import CatalogProposer, load_catalog
from autoresearch.domain.diffs import apply_diff, make_diff
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import Idea, IdeaOrigin, Trial, TrialStatus
from autoresearch.domain.programs import program_of
from autoresearch.environment import find_environment, load_environment
from autoresearch.errors import ConfigError, NotFound, PatchError
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
        (
            (
                'default_preset = "p"',
                'default_preset = "p"\nsurfaces = ["model"]\nunscored_surfaces = ["export"]',
            ),
            r"unscored_surfaces: 'export' is not one of surfaces \['model'\]",
        ),
        (
            ("budget = { steps = 5 }", 'budget = { steps = 5 }\nunscored_surfaces = ["export"]'),
            r"presets\.p\.unscored_surfaces: 'export' is not one of surfaces \[\]",
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


# -- what the catalog proposer leaves out for a parent -----------------------------------------------


def _line_of_descent(baseline: dict[str, str], *steps: tuple[str, IdeaOrigin, dict[str, str]]) -> Lineage:
    """The baseline (trial 1), then one trial per step, each the child of the one before: (the idea's
    key, its origin, the trial's code)."""
    ideas = [Idea(id=1, campaign_id=1, hypothesis="b", origin=IdeaOrigin.BASELINE, key="baseline")]
    trials = [
        Trial(id=1, campaign_id=1, number=0, idea_id=1, parent_id=None, status=TrialStatus.SUCCEEDED, seed=0)
    ]
    for n, (key, origin, code) in enumerate(steps, start=2):
        ideas.append(
            Idea(id=n, campaign_id=1, hypothesis=key, origin=origin, key=key, parent_trial_ids=(n - 1,))
        )
        trials.append(
            Trial(
                id=n,
                campaign_id=1,
                number=n - 1,
                idea_id=n,
                parent_id=n - 1,
                status=TrialStatus.SUCCEEDED,
                seed=0,
                duration_s=1.0,
                code_diff=make_diff(baseline, code),
            )
        )
    return Lineage.of(ideas, trials)


def _techniques_proposed(
    proposer: CatalogProposer, lineage: Lineage, parent_id: int, code: dict[str, str]
) -> list[str]:
    """Every technique the proposer offers on the parent, each marked tried in turn, until it has
    nothing left (or, with mutations, proposes one)."""
    keys: list[str] = []
    rng = random.Random(0)
    while (proposal := proposer.propose(lineage.trials[parent_id], code, lineage, rng)) is not None:
        if proposal.origin is not IdeaOrigin.CATALOG:
            break
        assert proposal.key not in keys
        keys.append(proposal.key)
        idea_id = max(lineage.ideas) + 1
        lineage.add_idea(
            Idea(
                id=idea_id,
                campaign_id=1,
                hypothesis=proposal.hypothesis,
                origin=proposal.origin,
                key=proposal.key,
                parent_trial_ids=(parent_id,),
            )
        )
    return keys


@pytest.mark.parametrize("name", ["nanogpt", "digits", "grpo"])
def test_on_every_parent_one_technique_made_the_catalog_proposes_exactly_the_techniques_that_apply(
    name: str,
) -> None:
    """The parent is a person's patch equal to one technique (no group, no catalog key in its lineage):
    only applying the diff to its code tells what stacks. Nothing that does not apply is proposed, and
    everything that applies (and makes a program not yet measured) is, before the proposer gives up."""
    env = load_environment(ROOT / "environments" / name)
    baseline = env.read_editable()
    techniques, _ = load_catalog(env)
    unscored = env.spec.unscored(env.spec.default_preset)
    proposer = CatalogProposer(env, mutation_rate=0.0)
    proposer.mutations = []  # techniques only: None then says that no technique is left
    conflicts = 0
    for made in techniques:
        parent_code = apply_diff(baseline, made.diff)
        lineage = _line_of_descent(baseline, (f"user:{made.key}", IdeaOrigin.USER, parent_code))
        proposed = _techniques_proposed(proposer, lineage, 2, parent_code)
        for t in techniques:
            try:
                child = apply_diff(parent_code, t.diff, base=baseline)
            except PatchError:
                conflicts += 1
                assert t.key not in proposed, f"{t.key} does not apply on top of {made.key}"
                continue
            new = program_of(child) not in {program_of(baseline), program_of(parent_code)}
            assert (t.key in proposed) == (new and t.surface not in unscored), (made.key, t.key)
    assert conflicts  # some technique edits the lines another one edited: the case this is about


def test_a_line_of_descent_gets_at_most_one_technique_of_a_group() -> None:
    """Adam replaces SGD, so momentum for SGD changes nothing after it: the two are one group. Their diffs
    edit different lines and would stack, so only the group keeps momentum off Adam's descendants."""
    env = load_environment(ROOT / "environments" / "digits")
    baseline = env.read_editable()
    techniques = {t.key: t for t in load_catalog(env)[0]}
    assert techniques["adam"].group == techniques["momentum"].group == "optimizer"
    adam = apply_diff(baseline, techniques["adam"].diff)
    adam_early_stop = apply_diff(adam, techniques["early_stop"].diff)
    apply_diff(adam_early_stop, techniques["momentum"].diff, base=baseline)  # it applies
    lineage = _line_of_descent(
        baseline, ("adam", IdeaOrigin.CATALOG, adam), ("early_stop", IdeaOrigin.CATALOG, adam_early_stop)
    )
    proposer = CatalogProposer(env, mutation_rate=0.0)
    proposer.mutations = []
    assert sorted(_techniques_proposed(proposer, lineage, 3, adam_early_stop)) == ["larger_batch", "mlp"]


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ('group = "moves"', "technique 'move_x': group 'moves' has no other technique"),
        ('group = "Moves!"', r"technique\.0\.group: String should match pattern"),
    ],
)
def test_a_catalog_group_is_a_name_shared_by_alternatives(
    tmp_path: Path, entries: str, expected: str
) -> None:
    root = tmp_path / "tiny"
    shutil.copytree(ENVIRONMENTS_DIR / "tiny", root)
    catalog = root / "catalog.toml"
    catalog.write_text(catalog.read_text().replace('key = "move_x"\n', f'key = "move_x"\n{entries}\n', 1))
    with pytest.raises(ConfigError, match=expected) as info:
        load_catalog(load_environment(root))
    assert str(info.value).startswith(str(catalog))


def test_nanogpt_proposes_its_export_technique_only_under_the_preset_whose_size_cap_reads_the_export() -> (
    None
):
    """Saving in bf16 moves val_bpb by rounding alone; under golf it makes room under the size cap."""
    env = load_environment(NANOGPT)
    assert env.spec.unscored("cpu") == {"export"} and env.spec.unscored("golf") == frozenset()
    baseline = env.read_editable()
    for preset, proposed in (("cpu", False), ("golf", True)):
        proposer = CatalogProposer(env, mutation_rate=0.0, preset=preset)
        lineage = _line_of_descent(baseline)
        asked = proposer.propose(lineage.trials[1], baseline, lineage, random.Random(0), surface="export")
        assert asked is not None and (asked.key == "bf16_export") is proposed
        proposer.mutations = []
        assert ("bf16_export" in _techniques_proposed(proposer, lineage, 1, baseline)) is proposed
