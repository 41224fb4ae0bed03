"""Prompt templates: versioned TOML files beside this module, rendered with `$name` placeholders.

A template's version goes into every call recorded with it, so a change to a prompt shows in
the lineage. Bump `version` whenever the text changes.
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    parts: dict[str, str]  # e.g. system, user, revision

    @property
    def tag(self) -> str:
        """How a recorded call names the template it came from, e.g. implementer@v1."""
        return f"{self.name}@v{self.version}"

    def render(self, part: str, **values: object) -> str:
        """The part with every `$name` filled in; KeyError names a value the template wants and was not given."""
        return string.Template(self.parts[part]).substitute({k: str(v) for k, v in values.items()}).strip()


@cache
def load_prompt(name: str) -> PromptTemplate:
    path = PROMPTS_DIR / f"{name}.toml"
    data = tomllib.loads(path.read_text())
    version = data.pop("version")
    return PromptTemplate(name, int(version), {k: str(v) for k, v in data.items()})
