"""The environments campaigns can run on: their metric, direction and presets.

Only environments found on the configured search path are served, by name: a request can never make
the server load a folder of its choosing."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path

from autoresearch.api.dependencies import SettingsDep
from autoresearch.api.problems import problems
from autoresearch.api.schemas import EnvironmentPublic
from autoresearch.api.security import CAN_READ
from autoresearch.environment import Environment, discover, load_environment
from autoresearch.errors import AutoresearchError, NotFound
from autoresearch.settings import Settings

router = APIRouter(prefix="/environments", tags=["environments"], dependencies=[CAN_READ])
log = logging.getLogger(__name__)


def environment_named(settings: Settings, name: str) -> Environment:
    """The environment of this name on the search path; NotFound otherwise (paths are not names)."""
    found = discover(settings.environment_search_path)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise NotFound(f"no environment named {name!r} (known: {known})")
    return load_environment(found[name])


@router.get("", responses=problems(401))
def list_environments(settings: SettingsDep) -> list[EnvironmentPublic]:
    """By name; an environment whose files are invalid is left out (and logged)."""
    listed = []
    for name, root in sorted(discover(settings.environment_search_path).items()):
        try:
            listed.append(EnvironmentPublic.of(load_environment(root)))
        except AutoresearchError as exc:
            log.warning("environment %s at %s is invalid: %s", name, root, exc)
    return listed


@router.get("/{name}", responses=problems(401, 404, 422))
def get_environment(
    name: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]*$")], settings: SettingsDep
) -> EnvironmentPublic:
    return EnvironmentPublic.of(environment_named(settings, name))
