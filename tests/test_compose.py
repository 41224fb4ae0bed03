"""docker-compose.yml, the Dockerfile and .env.example agree with the code: no Docker engine needed.

Every `autoresearch ...` command a service runs exists with the options it passes, and every
variable set is one the app reads (a Settings field) or one a named third party reads.
"""

from __future__ import annotations

import difflib
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import AliasChoices

from autoresearch.cli import app
from autoresearch.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]

# Variables set for someone other than autoresearch: boto3, wandb, the LLM SDKs, the images.
THIRD_PARTY_PREFIXES = ("AWS_", "WANDB_", "POSTGRES_", "MINIO_")
THIRD_PARTY_NAMES = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"}

# `NAME=value`, or `# NAME=value` for an optional one left commented out.
ENV_LINE = re.compile(r"^(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=")


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def environment_of(service: dict[str, Any]) -> set[str]:
    """The names a service's `environment:` sets, in its mapping or its `NAME=value` list form."""
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        return set(environment)
    return {entry.split("=", 1)[0] for entry in environment}


def env_example() -> dict[str, bool]:
    """The names .env.example assigns: True when set, False when only shown commented out."""
    assigned: dict[str, bool] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := ENV_LINE.match(line.strip()):
            assigned[match[2]] = match[1] is None or assigned.get(match[2], False)
    return assigned


@cache
def setting_variables() -> frozenset[str]:
    """Every variable Settings reads: AUTORESEARCH_<FIELD>, or a field's own aliases."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add(f"{prefix}{name}".upper())
        elif isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(choice.upper() for choice in alias.choices if isinstance(choice, str))
    return frozenset(names)


def problems_with_variable(name: str) -> str | None:
    """Why `name` should not be set, or None when something reads it."""
    if name.upper().startswith("AUTORESEARCH_"):
        if name.upper() in setting_variables():
            return None
        close = difflib.get_close_matches(name.upper(), setting_variables(), n=1)
        hint = f"did you mean {close[0]}?" if close else "see autoresearch/settings.py"
        return f"{name} is not a setting ({hint})"
    if name in THIRD_PARTY_NAMES or name.startswith(THIRD_PARTY_PREFIXES):
        return None
    return f"{name} is neither an AUTORESEARCH_ setting nor a known third-party variable"


def problems_with_command(argv: list[str]) -> list[str]:
    """What in `autoresearch SUBCOMMAND --option ...` the CLI does not have; empty when all is there."""
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    subcommand = argv[1] if len(argv) > 1 else ""
    command = group.commands.get(subcommand)
    if command is None:
        return [
            f"`autoresearch {subcommand}` is not a command (there are: {', '.join(sorted(group.commands))})"
        ]
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    passed = [arg.split("=", 1)[0] for arg in argv[2:] if arg.startswith("--")]
    return [
        f"`autoresearch {subcommand}` has no option {option} (it has: {', '.join(sorted(options))})"
        for option in passed
        if option not in options
    ]


# -- the checks, on the real files -------------------------------------------------------------

APP_SERVICES = sorted(name for name, s in SERVICES.items() if command_of(s)[:1] == ["autoresearch"])


def test_the_app_services_are_all_there() -> None:
    expected = ["api", "controller", "cpu-worker", "gpu-worker", "implement-worker"]
    assert expected == APP_SERVICES, "a service running `autoresearch` was added or lost its command"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_service_runs_a_command_the_cli_has(service: str) -> None:
    argv = command_of(SERVICES[service])
    problems = problems_with_command(argv)
    assert not problems, f"service {service!r} runs `{shlex.join(argv)}`: " + "; ".join(problems)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_sets_only_variables_someone_reads(service: str) -> None:
    problems = [
        p for name in sorted(environment_of(SERVICES[service])) if (p := problems_with_variable(name))
    ]
    assert not problems, f"service {service!r}: " + "; ".join(problems)


def test_env_example_names_only_variables_someone_reads() -> None:
    problems = [p for name in sorted(env_example()) if (p := problems_with_variable(name))]
    assert not problems, ".env.example: " + "; ".join(problems)


def test_every_variable_the_compose_file_interpolates_is_set_in_env_example() -> None:
    interpolated = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    set_in_example = {name for name, is_set in env_example().items() if is_set}
    assert interpolated - set_in_example == set(), "`cp .env.example .env` would leave these unset"


def test_every_build_arg_is_declared_in_the_dockerfile() -> None:
    """A misspelt build arg is silently ignored: the GPU worker would get the CPU torch."""
    declared = set(re.findall(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)", (ROOT / "Dockerfile").read_text(), re.M))
    for name, service in SERVICES.items():
        build = service.get("build")
        args = set(build.get("args", {})) if isinstance(build, dict) else set()
        assert args <= declared, f"service {name!r} passes build args the Dockerfile lacks: {args - declared}"


# -- the checks catch what they are for --------------------------------------------------------


def test_a_misspelt_setting_is_caught() -> None:
    assert problems_with_variable("AUTORESEARCH_DATABASE_URL") is None
    assert problems_with_variable("AUTORESEARCH_DATABSE_URL") == (
        "AUTORESEARCH_DATABSE_URL is not a setting (did you mean AUTORESEARCH_DATABASE_URL?)"
    )


def test_an_alias_is_a_setting_and_an_unknown_third_party_variable_is_caught() -> None:
    assert problems_with_variable("AUTORESEARCH_OPENAI_API_KEY") is None  # an alias of openai_api_key
    assert problems_with_variable("OPENAI_API_KEY") is None
    assert problems_with_variable("AWS_SECRET_ACCESS_KEY") is None
    assert problems_with_variable("OPENAI_APIKEY") is not None
    assert problems_with_variable("DATABASE_URL") is not None


def test_an_unknown_command_or_option_is_named() -> None:
    assert problems_with_command(["autoresearch", "worker", "--queues", "cpu"]) == []
    assert problems_with_command(["autoresearch", "run", "nanogpt", "--no-preflight"]) == []
    [unknown_command] = problems_with_command(["autoresearch", "wroker", "--queues", "cpu"])
    assert unknown_command.startswith("`autoresearch wroker` is not a command")
    [unknown_option] = problems_with_command(["autoresearch", "worker", "--queue=cpu"])
    assert unknown_option.startswith("`autoresearch worker` has no option --queue ")
