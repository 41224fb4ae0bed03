"""The environment contract: `environments/<name>/environment.toml`, validated with pydantic."""

from __future__ import annotations

import fnmatch
import hashlib
import string
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autoresearch.domain.model import Direction
from autoresearch.errors import ConfigError, NotFound, describe_invalid

ENVIRONMENT_FILE = "environment.toml"
Contract = TypeVar("Contract", bound=BaseModel)


class StrictModel(BaseModel):
    """A contract file's section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Metric(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    direction: Direction
    unit: str = ""


TRIAL_PLACEHOLDERS = frozenset({"python", "preset", "seed", "data", "out"})
# train_seconds: how long the training phase ran, by the runner's clock (the score of a speedrun).
# split: `val` for every search evaluation, `test` for a confirmation's second one (see Data.test).
EVALUATE_PLACEHOLDERS = TRIAL_PLACEHOLDERS | {"train_seconds", "split"}
PREPARE_PLACEHOLDERS = frozenset({"python", "data"})


def _placeholders(part: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(part) if name is not None}
    except ValueError as exc:
        raise ValueError(f"{part!r}: {exc}") from None


def _check_placeholders(argv: list[str], allowed: frozenset[str]) -> None:
    for part in argv:
        unknown = _placeholders(part) - allowed
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{sorted(unknown)[0]}}} in {part!r}; use {sorted(allowed)}"
            )


class Commands(StrictModel):
    """Argument lists; `{python}`, `{preset}`, `{seed}`, `{data}` and `{out}` are filled in per trial,
    and in evaluate also `{train_seconds}` and `{split}` (`val` or `test`)."""

    prepare: list[str] | None = None
    train: list[str] = Field(min_length=1)
    evaluate: list[str] = Field(min_length=1)

    @field_validator("train")
    @classmethod
    def _train_placeholders(cls, argv: list[str]) -> list[str]:
        _check_placeholders(argv, TRIAL_PLACEHOLDERS)
        return argv

    @field_validator("evaluate")
    @classmethod
    def _evaluate_placeholders(cls, argv: list[str]) -> list[str]:
        _check_placeholders(argv, EVALUATE_PLACEHOLDERS)
        return argv

    @field_validator("prepare")
    @classmethod
    def _prepare_placeholders(cls, argv: list[str] | None) -> list[str] | None:
        _check_placeholders(argv or [], PREPARE_PLACEHOLDERS)
        return argv


class Files(StrictModel):
    """Glob patterns relative to the environment folder."""

    editable: list[str] = Field(min_length=1)
    protected: list[str] = Field(default_factory=list)
    private: list[str] = Field(default_factory=list)  # protected files never copied into a trial

    @model_validator(mode="after")
    def _private_is_protected(self) -> Files:
        stray = [p for p in self.private if p not in self.protected]
        if stray:
            raise ValueError(f"private pattern {stray[0]!r} must also be listed under protected")
        return self


class Data(StrictModel):
    """Files of the prepared data folder that each phase may read; the sandbox hides the rest."""

    train: list[str] = Field(default_factory=list)
    evaluate: list[str] = Field(default_factory=list)
    # The held-out test split: only a confirmation's evaluation (`{split}` = test) is shown these, and
    # then not `evaluate`'s; the search never sees them, so a score on them is not one it could chase.
    test: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _test_is_apart(self) -> Data:
        for phase, files in (("train", self.train), ("evaluate", self.evaluate)):
            shared = sorted(set(self.test) & set(files))
            if shared:
                raise ValueError(
                    f"test file {shared[0]!r} is also listed under data.{phase}: the search would see it"
                )
        return self


class Budget(StrictModel):
    steps: Annotated[int, Field(gt=0)] | None = None
    seconds: Annotated[float, Field(gt=0)] | None = None
    wall_clock_s: Annotated[float, Field(gt=0)] = 600.0
    memory_mb: Annotated[int, Field(gt=0)] | None = None  # default: AUTORESEARCH_TRIAL_MEMORY_MB
    disk_mb: Annotated[int, Field(gt=0)] | None = (
        None  # what a trial may write; default: AUTORESEARCH_TRIAL_DISK_MB
    )
    max_params: Annotated[int, Field(gt=0)] | None = None
    # Of the saved model, as the evaluator measures it (the `artifact_bytes` of its verdict).
    max_bytes: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _wall_clock_covers_seconds(self) -> Budget:
        if self.seconds is not None and self.wall_clock_s <= self.seconds:
            raise ValueError(
                f"wall_clock_s ({self.wall_clock_s}) must exceed the training budget seconds ({self.seconds})"
            )
        return self


class Resources(StrictModel):
    cpu_threads: Annotated[int, Field(ge=1)] = 1
    gpu: Annotated[float, Field(ge=0, le=8)] = 0.0  # a fraction of one GPU, or a whole number of GPUs


class Gates(StrictModel):
    """Bounds on the evaluator's verdict; a trial outside them is `gate_miss`."""

    max_metric: float | None = None
    min_metric: float | None = None


class Preset(StrictModel):
    description: str = ""
    budget: Budget
    model: dict[str, Any] = Field(default_factory=dict)  # read by the training script itself
    resources: Resources | None = None
    # Named local paths outside the environment (a model's weights, a dataset) that training may read:
    # the sandbox binds them read-only. "" leaves one unset; the script says what to set.
    inputs: dict[str, str] = Field(default_factory=dict)
    # In place of the environment's unscored_surfaces under this preset (a size cap makes export count).
    unscored_surfaces: list[str] | None = None

    @field_validator("inputs")
    @classmethod
    def _absolute_inputs(cls, inputs: dict[str, str]) -> dict[str, str]:
        for name, path in inputs.items():
            if path and not Path(path).is_absolute():
                raise ValueError(f"inputs.{name}: {path!r} must be an absolute path")
        return inputs

    @property
    def input_paths(self) -> tuple[Path, ...]:
        return tuple(Path(p) for p in self.inputs.values() if p)


class EnvironmentSpec(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = Field(min_length=1)
    default_preset: str
    metric: Metric
    commands: Commands
    files: Files
    data: Data = Data()
    resources: Resources = Resources()
    gates: Gates = Gates()
    presets: dict[str, Preset] = Field(min_length=1)
    surfaces: list[str] = Field(default_factory=list)
    # Surfaces whose edits the metric cannot see beyond rounding (how the model is saved, when nothing
    # caps its size): the catalog proposes nothing there. A preset may name its own.
    unscored_surfaces: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unscored_surfaces_are_surfaces(self) -> EnvironmentSpec:
        named = [("unscored_surfaces", self.unscored_surfaces)] + [
            (f"presets.{name}.unscored_surfaces", preset.unscored_surfaces or [])
            for name, preset in self.presets.items()
        ]
        for field, surfaces in named:
            for surface in surfaces:
                if surface not in self.surfaces:
                    raise ValueError(f"{field}: {surface!r} is not one of surfaces {self.surfaces}")
        return self

    def unscored(self, preset: str) -> frozenset[str]:
        """The surfaces the metric cannot see under `preset`."""
        own = self.presets[preset].unscored_surfaces
        return frozenset(self.unscored_surfaces if own is None else own)

    @field_validator("presets")
    @classmethod
    def _preset_names(cls, presets: dict[str, Preset]) -> dict[str, Preset]:
        for name in presets:
            if not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"preset name {name!r} must be letters, digits, '-' or '_'")
        return presets

    @model_validator(mode="after")
    def _default_preset_exists(self) -> EnvironmentSpec:
        if self.default_preset not in self.presets:
            raise ValueError(f"default_preset {self.default_preset!r} is not one of {sorted(self.presets)}")
        return self

    @model_validator(mode="after")
    def _test_split_is_named(self) -> EnvironmentSpec:
        # Without {split} the evaluator could not tell the test split from val: it would score val again.
        if self.data.test and not any("split" in _placeholders(part) for part in self.commands.evaluate):
            raise ValueError(
                'data.test is set, so commands.evaluate must pass {split} (e.g. "--split", "{split}"): '
                "the evaluator reads the test files only when it is told split=test"
            )
        return self


def read_contract(path: Path, model: type[Contract]) -> Contract:
    """Read and validate a TOML contract file; every problem becomes one ConfigError line."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: " + "; ".join(describe_invalid(e) for e in exc.errors())) from exc


@dataclass(frozen=True)
class Environment:
    """A validated spec together with the folder that holds its code."""

    spec: EnvironmentSpec
    root: Path

    @property
    def name(self) -> str:
        return self.spec.name

    def preset(self, name: str | None) -> tuple[str, Preset]:
        chosen = name or self.spec.default_preset
        if chosen not in self.spec.presets:
            raise NotFound(
                f"environment {self.name!r} has no preset {chosen!r}; choose from {', '.join(self.spec.presets)}"
            )
        return chosen, self.spec.presets[chosen]

    def resources(self, preset: Preset) -> Resources:
        return preset.resources or self.spec.resources

    @property
    def has_test_split(self) -> bool:
        """Whether a confirmation can score a trial on held-out data the search never saw."""
        return bool(self.spec.data.test)

    def _files(self) -> list[str]:
        return sorted(
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )

    @cached_property
    def editable_files(self) -> tuple[str, ...]:
        return tuple(f for f in self._files() if self.is_editable(f))

    @cached_property
    def protected_files(self) -> tuple[str, ...]:
        return tuple(f for f in self._files() if self.is_protected(f))

    def is_editable(self, relpath: str) -> bool:
        return _matches(relpath, self.spec.files.editable) and not self.is_protected(relpath)

    def is_protected(self, relpath: str) -> bool:
        return _matches(relpath, self.spec.files.protected)

    @cached_property
    def trial_files(self) -> tuple[str, ...]:
        """The protected files copied into each trial's working copy (read-only by contract)."""
        return tuple(f for f in self.protected_files if not _matches(f, self.spec.files.private))

    def read_editable(self) -> dict[str, str]:
        """The baseline code: every editable file's text, keyed by relative path."""
        return {f: (self.root / f).read_text() for f in self.editable_files}

    @cached_property
    def protected_digests(self) -> dict[str, str]:
        return {f: sha256_file(self.root / f) for f in self.protected_files}

    @cached_property
    def digest(self) -> str:
        """One sha256 over every file of the environment (its name and content): the version a trial ran."""
        whole = hashlib.sha256()
        for relpath in self._files():
            whole.update(f"{relpath}\0{sha256_file(self.root / relpath)}\0".encode())
        return whole.hexdigest()


def _matches(relpath: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(relpath, pattern) for pattern in patterns)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_environment(root: Path) -> Environment:
    root = root.resolve()
    spec = read_contract(root / ENVIRONMENT_FILE, EnvironmentSpec)
    if spec.name != root.name:
        raise ConfigError(
            f"{root / ENVIRONMENT_FILE}: name: must match its folder {root.name!r} (got {spec.name!r})"
        )
    env = Environment(spec=spec, root=root)
    missing = [
        p for p in spec.files.editable if not any(fnmatch.fnmatchcase(f, p) for f in env.editable_files)
    ]
    if missing:
        raise ConfigError(f"{root / ENVIRONMENT_FILE}: files.editable: no file matches {missing[0]!r}")
    return env


def discover(search_path: list[Path]) -> dict[str, Path]:
    """Every folder holding an environment.toml under the search path, or on it (a folder registered
    with `env add`); earlier entries win."""
    found: dict[str, Path] = {}
    for base in search_path:
        if (base / ENVIRONMENT_FILE).is_file():
            found.setdefault(base.name, base)
            continue
        if not base.is_dir():
            continue
        for toml in sorted(base.glob(f"*/{ENVIRONMENT_FILE}")):
            found.setdefault(toml.parent.name, toml.parent)
    return found


def find_environment(name: str, search_path: list[Path]) -> Environment:
    candidate = Path(name)
    if (candidate / ENVIRONMENT_FILE).is_file():  # a path to an environment folder
        return load_environment(candidate.resolve())
    found = discover(search_path)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise NotFound(f"no environment named {name!r} (known: {known}); `autoresearch envs` lists them")
    return load_environment(found[name])
