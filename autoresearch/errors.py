"""The exceptions a user of the library or the CLI can catch.

Every error a user can cause derives from `AutoresearchError` and carries a message that says
what to fix; the CLI prints it on one line, never as a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class AutoresearchError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(AutoresearchError):
    """A settings value, environment file or command-line option is invalid."""


class NotFound(AutoresearchError):
    """A campaign, trial, environment or preset that was asked for does not exist."""


class StoreError(AutoresearchError):
    """The database could not be reached or is not at the expected schema."""


class Conflict(AutoresearchError):
    """Someone else already did it: the idea has its trial, the campaign has its controller."""


class PatchError(AutoresearchError):
    """A diff could not be parsed or applied."""


def describe_invalid(error: Mapping[str, Any], where: str | None = None) -> str:
    """One pydantic validation error as `where: message (got value)`; `where` defaults to the field's
    dotted path. A whole table as the value is left out: the path already says which."""
    where = where or ".".join(str(part) for part in error["loc"]) or "(top level)"
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"{where}: {error['msg']}{shown}"
