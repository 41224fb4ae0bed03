"""Bringing your own environment: make one from the template (`env new`) and register a folder
outside the search path (`env add`). `envcheck` runs one to see that it works."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from autoresearch.environment import ENVIRONMENT_FILE, Environment, discover, load_environment
from autoresearch.errors import ConfigError
from autoresearch.settings import PACKAGE_DIR, Settings

TEMPLATE = PACKAGE_DIR / "scaffold"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_NAMED = ("environment.toml", "README.md")  # template files that carry the environment's name


def new_environment(name: str, parent: Path, settings: Settings) -> Path:
    """A working environment folder `parent/name` made from the template; the folder. Nothing is
    written when the name is invalid, the folder exists or another environment has the name."""
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not a valid environment name: lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit"
        )
    target = parent.expanduser().resolve() / name
    if target.exists():
        raise ConfigError(f"{target} already exists: choose another name or --dir")
    _refuse_a_known_name(name, target, settings)
    shutil.copytree(TEMPLATE, target)
    for relpath in _NAMED:
        path = target / relpath
        path.write_text(path.read_text().replace("__NAME__", name))
    load_environment(target)  # the template must always make a valid environment
    return target


def register_environment(path: Path, settings: Settings) -> Environment:
    """Add an environment folder to the search path of this data folder; the environment."""
    root = path.expanduser().resolve()
    if not (root / ENVIRONMENT_FILE).is_file():
        raise ConfigError(f"{root} holds no {ENVIRONMENT_FILE}: not an environment folder")
    env = load_environment(root)
    _refuse_a_known_name(env.name, root, settings)
    if root not in settings.registered_environments:
        settings.registry_file.parent.mkdir(parents=True, exist_ok=True)
        with settings.registry_file.open("a") as registry:
            registry.write(f"{root}\n")
    return env


def _refuse_a_known_name(name: str, root: Path, settings: Settings) -> None:
    known = discover(settings.environment_search_path)
    if name in known and known[name] != root:
        raise ConfigError(
            f"an environment named {name!r} is already known at {known[name]}: "
            "rename the folder (and its `name`) to register this one"
        )
