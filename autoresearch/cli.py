"""The `autoresearch` command: run campaigns and browse what they recorded.

Thin by design: parse options, call a service, print with Rich. A user's mistake is one red
line and exit status 1, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic_core import to_jsonable_python
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from autoresearch import __version__
from autoresearch.adapters.artifacts import open_artifacts
from autoresearch.adapters.catalog import CatalogProposer, load_catalog
from autoresearch.adapters.gpus import query_gpus
from autoresearch.adapters.sandbox import UNSANDBOXED, Sandbox, make_sandbox
from autoresearch.adapters.tracker import tracker_for
from autoresearch.agents.build import check_clients, open_agents, preflight_preset
from autoresearch.agents.config import CATALOG, AgentsConfig, agents_config
from autoresearch.domain.confirmation import seed_noise, verdict
from autoresearch.domain.lineage import Lineage
from autoresearch.domain.model import (
    Campaign,
    CampaignStatus,
    Direction,
    Idea,
    IdeaOrigin,
    Scope,
    Trial,
    TrialRole,
    TrialStatus,
)
from autoresearch.domain.placement import GpuPool
from autoresearch.domain.strategies import STRATEGIES
from autoresearch.environment import Environment, discover, find_environment, load_environment
from autoresearch.errors import AutoresearchError, ConfigError, StoreError
from autoresearch.services import reports
from autoresearch.services.auth import issue_token
from autoresearch.services.campaign import (
    CampaignController,
    CampaignOutcome,
    ObserverGroup,
    campaign_lock,
    create_campaign,
)
from autoresearch.services.envcheck import CheckReport, check_environment, report_dict
from autoresearch.services.environments import new_environment, register_environment
from autoresearch.services.proposer import Proposal, Proposer
from autoresearch.services.reproduce import reproduce as run_again
from autoresearch.services.runner import TrialRunner, prepare_data
from autoresearch.services.store import Store
from autoresearch.settings import Settings, load_settings

if TYPE_CHECKING:
    from autoresearch.adapters.api_client import ApiClient

app = typer.Typer(
    help="Execution-grounded auto-research: propose ideas, patch a training recipe, run sandboxed trials, "
    "evolve on measured scores.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ApiOpt = Annotated[
    str | None,
    typer.Option(
        "--api",
        metavar="URL",
        help="Use the API at URL (e.g. http://host:8000) instead of the local database; "
        "its token comes from AUTORESEARCH_API_TOKEN.",
    ),
]


def main() -> None:
    try:
        app()
    except AutoresearchError as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(1)


@contextmanager
def _store(settings: Settings) -> Iterator[Store]:
    from autoresearch.adapters.db import open_store

    store = open_store(settings.resolved_database_url)
    try:
        yield store
    finally:
        store.close()


def _print_json(data: Any) -> None:
    # Encoded as the API encodes it (ISO 8601 times in UTC with Z), so local and --api output are one.
    sys.stdout.write(json.dumps(data, indent=2, default=to_jsonable_python) + "\n")


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        console.print(f"autoresearch {__version__}")
        raise typer.Exit()


# -- environments -------------------------------------------------------------------------------
@app.command()
def envs(as_json: JsonOpt = False) -> None:
    """List the environments this installation can run."""
    settings = load_settings()
    rows: list[dict[str, Any]] = []
    for name, root in sorted(discover(settings.environment_search_path).items()):
        try:
            env = load_environment(root)
            techniques, mutations = load_catalog(env)
        except AutoresearchError as exc:
            rows.append({"name": name, "path": str(root), "error": str(exc)})
            continue
        spec = env.spec
        rows.append(
            {
                "name": name,
                "path": str(root),
                "metric": f"{spec.metric.name} ({spec.metric.direction}, {spec.metric.unit})",
                "presets": list(spec.presets),
                "default_preset": spec.default_preset,
                "techniques": len(techniques),
                "mutations": len(mutations),
                "description": " ".join(spec.description.split()),
            }
        )
    if as_json:
        _print_json(rows)
        return
    table = Table(title="environments", title_justify="left")
    for column in ("name", "metric", "presets", "catalog", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if "error" in row:
            table.add_row(row["name"], "[red]invalid[/]", "", "", row["error"])
            continue
        presets = ", ".join(f"[b]{p}[/]" if p == row["default_preset"] else p for p in row["presets"])
        catalog = f"{row['techniques']} techniques, {row['mutations']} mutations"
        table.add_row(row["name"], row["metric"], presets, catalog, row["description"][:160])
    console.print(table)


# -- running ------------------------------------------------------------------------------------
class LiveView:
    """Shows a campaign as it runs: a live table on a terminal, one line per event elsewhere."""

    def __init__(self, campaign: Campaign, env: Environment, lineage_source: Store) -> None:
        self.campaign = campaign
        self.direction = env.spec.metric.direction
        self.metric = env.spec.metric.name
        self.store = lineage_source
        self.rows: dict[int, tuple[Trial, Idea]] = {}
        self.best: Trial | None = None
        self.started = time.monotonic()
        self.durations: list[float] = []
        self.notes: list[str] = []
        self.live: Live | None = None

    def __enter__(self) -> LiveView:
        ideas = {idea.id: idea for idea in self.store.list_ideas(self.campaign.id)}
        for trial in self.store.list_trials(self.campaign.id):
            self.rows[trial.number] = (trial, ideas[trial.idea_id])
            self._update_best(trial)
        if console.is_terminal:
            self.live = Live(self._render(), console=console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(None, None, None)

    def _update_best(self, trial: Trial) -> None:
        if trial.score is None or not trial.is_scored or not trial.is_search:
            return
        if (
            self.best is None
            or self.best.score is None
            or self.direction.better(trial.score, self.best.score)
        ):
            self.best = trial

    def trial_started(self, trial: Trial, idea: Idea) -> None:
        self.rows[trial.number] = (trial, idea)
        self._refresh(f"trial {trial.number} started: {self._what(trial, idea)}")

    def trial_finished(self, trial: Trial, idea: Idea) -> None:
        self.rows[trial.number] = (trial, idea)
        if trial.duration_s:
            self.durations.append(trial.duration_s)
        self._update_best(trial)
        outcome = f"{self.metric} {trial.score:.4f}" if trial.is_scored else f"{trial.label}: {trial.reason}"
        if trial.test_score is not None:
            outcome += f", test {trial.test_score:.4f}"
        self._refresh(f"trial {trial.number} {trial.status}: {outcome}  ({self._what(trial, idea)})")

    def _what(self, trial: Trial, idea: Idea) -> str:
        if trial.is_search:
            return idea.title
        return f"{trial.role} of trial {self._number(trial.confirms)}, seed {trial.seed}: {idea.title}"

    def _number(self, trial_id: int | None) -> int | str:
        return next((t.number for t, _ in self.rows.values() if t.id == trial_id), "?")

    def note(self, message: str) -> None:
        self.notes.append(message)
        self._refresh(message)

    def _refresh(self, line: str) -> None:
        if self.live is not None:
            self.live.update(self._render())
        else:
            console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {line}", highlight=False, soft_wrap=True)

    def _noise(self) -> str:
        """The baseline's spread over the seeds it ran on so far: the band a gain must clear."""
        scores = [
            t.score
            for t, idea in self.rows.values()
            if idea.origin is IdeaOrigin.BASELINE and t.score is not None
        ]
        sd = seed_noise(scores)
        return f"noise ±{sd:.4f} (baseline sd, {len(scores)} seeds)" if sd is not None else "noise -"

    def _eta(self) -> str:
        done = sum(
            t.spends_search_budget and t.status in (TrialStatus.SUCCEEDED, TrialStatus.FAILED)
            for t, _ in self.rows.values()
        )
        left = self.campaign.trial_budget - done
        if not self.durations or left <= 0:
            return "-"
        seconds = sum(self.durations) / len(self.durations) * left / self.campaign.concurrency
        return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"

    def _render(self) -> Group:
        table = Table(expand=True)
        for column, kw in (
            ("trial", {"justify": "right"}),
            ("parent", {"justify": "right"}),
            ("idea", {"ratio": 3, "overflow": "ellipsis", "no_wrap": True}),
            ("status", {}),
            (self.metric, {"justify": "right"}),
            ("best so far", {"justify": "right"}),
            ("time", {"justify": "right"}),
        ):
            table.add_column(column, **kw)
        best: float | None = None
        parents = {t.id: t.number for t, _ in self.rows.values()}
        shown = sorted(self.rows.items())
        for number, (trial, idea) in shown:
            if trial.is_search and trial.is_scored and trial.score is not None:
                best = trial.score if best is None or self.direction.better(trial.score, best) else best
            if len(shown) > 18 and number < shown[-18][0] and number != 0:
                continue
            table.add_row(
                str(number),
                "" if trial.parent_id is None else str(parents.get(trial.parent_id, "?")),
                idea.title if trial.is_search else f"{trial.role}, seed {trial.seed}: {idea.title}",
                _status_text(trial.status, trial.label),
                f"{trial.score:.4f}" if trial.score is not None else "",
                f"{best:.4f}" if best is not None else "",
                f"{trial.duration_s:.0f}s" if trial.duration_s else "",
            )
        elapsed = time.monotonic() - self.started
        best_text = (
            f"{self.best.score:.4f} (trial {self.best.number})" if self.best and self.best.score else "-"
        )
        header = Text.from_markup(
            f"[b]{self.campaign.name}[/]  {self.campaign.strategy}  "
            f"best {best_text}  {self._noise()}  elapsed {elapsed / 60:.1f} min  ETA {self._eta()}"
        )
        return Group(header, table, *(Text(n, style="yellow") for n in self.notes[-3:]))


def _print_diff(diff: str) -> None:
    """Highlighted on a terminal; verbatim (never wrapped) when piped, so it can be applied again."""
    if console.is_terminal:
        console.print(Syntax(diff, "diff", theme="ansi_dark", background_color="default", word_wrap=True))
    else:
        console.print(diff, markup=False, highlight=False, soft_wrap=True, end="")


def _status_text(status: str, label: str | None) -> Text:
    colour = {
        TrialStatus.SUCCEEDED: "green",
        TrialStatus.FAILED: "red",
        TrialStatus.INTERRUPTED: "yellow",
        TrialStatus.RUNNING: "cyan",
    }.get(TrialStatus(status), "white")
    return Text(label or status, style=colour)


def _local_sandbox(settings: Settings) -> Sandbox:
    """The sandbox this machine's trials will run in, made before a campaign is recorded: a sandbox or
    trial interpreter that cannot work stops the command with nothing left behind."""
    sandbox = make_sandbox(settings.sandbox, settings.python)
    if not sandbox.isolated:
        errors.print(f"[bold yellow]warning:[/] {UNSANDBOXED}")
    return sandbox


def _drive(
    settings: Settings,
    store: Store,
    campaign: Campaign,
    env: Environment,
    sandbox: Sandbox,
    proposer: Proposer | None = None,
    gpus: GpuPool | None = None,
) -> CampaignOutcome:
    with console.status(f"preparing data for {env.name}..."):
        data_dir = prepare_data(env, settings)
    runner = TrialRunner(env, campaign.preset, settings, sandbox, data_dir, open_artifacts(settings))
    smoke = preflight_preset(env, campaign.preset)
    smoke_runner = TrialRunner(env, smoke, settings, sandbox, data_dir) if smoke else None
    cancel = threading.Event()

    def stop(signum: int, frame: object) -> None:
        cancel.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once
        errors.print("[yellow]stopping: cancelling the trials in flight (Ctrl-C again to quit at once)[/]")

    # Ctrl-C, and a plain `kill` from a service manager, stop cleanly: in-flight trials are cancelled.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with (
            campaign_lock(settings, campaign),
            open_agents(store, campaign, env, settings, smoke_runner, cancel) as agents,
            LiveView(campaign, env, store) as live,
        ):
            tracker = tracker_for(campaign, settings)
            view = ObserverGroup(live, tracker) if tracker is not None else live
            if agents is None:
                controller = CampaignController(
                    store,
                    campaign,
                    env,
                    runner,
                    proposer or CatalogProposer(env, campaign.goal, preset=campaign.preset),
                    view,
                    gpus=gpus,
                )
            else:
                controller = CampaignController(
                    store,
                    campaign,
                    env,
                    runner,
                    agents.proposer,
                    view,
                    implementer=agents.implementer,
                    novelty=agents.novelty,
                    analyst=agents.analyst,
                    gpus=gpus,
                )
            outcome = controller.run(cancel)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _print_outcome(store, outcome, env)
    return outcome


def _print_outcome(store: Store, outcome: CampaignOutcome, env: Environment) -> None:
    campaign, best, baseline = outcome.campaign, outcome.best, outcome.baseline
    counts = store.count_trials(campaign.id)
    console.print(
        f"\n[b]{campaign.name}[/] {campaign.status}: "
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    )
    metric = env.spec.metric
    if baseline is not None and baseline.score is not None:
        console.print(f"baseline (trial {baseline.number}): {metric.name} {baseline.score:.4f} {metric.unit}")
    if best is not None and best.score is not None and baseline is not None and best.id != baseline.id:
        gain = f" ({best.score - baseline.score:+.4f} vs baseline)" if baseline.score is not None else ""
        console.print(
            f"[b]best of the search (trial {best.number}, seed {best.seed}): "
            f"{metric.name} {best.score:.4f} {metric.unit}{gain}[/]"
        )
        chain = " -> ".join(store.get_idea(t.idea_id).title for t in reports.path_to(store, best)[1:])
        console.print(f"lineage: {chain}")
        _print_diff(best.code_diff)
    elif best is not None:
        console.print("no trial beat the baseline.")
    ideas = {idea.id: idea for idea in store.list_ideas(campaign.id)}
    confirmed = reports.confirmation_report(store.list_trials(campaign.id), ideas, metric.direction)
    if confirmed is not None:
        _print_confirmed(confirmed)
    elif campaign.confirm_seeds == 0:
        console.print("[yellow]unconfirmed: one seed's score, on the split the search chose it by[/]")
    llm = reports.llm_report(store, campaign)
    if llm:
        _print_llm_usage(llm)
    if outcome.proposer_stopped:
        console.print(f"[yellow]no more ideas: {outcome.proposer_stopped}[/]")
    if outcome.stopped_by_user:
        console.print(f"stopped. Carry on with: [b]autoresearch resume {campaign.name}[/]")


def _print_confirmed(confirmed: dict[str, Any]) -> None:
    """Each confirmed program: its search score beside its scores on fresh seeds (and the test split), its
    difference to the baseline with its interval, what it spent; then the verdict. Lines, not a table:
    they read at any width, in a log as on a terminal."""
    split = confirmed["split"]
    where = "the test split, which the search never saw" if split == "test" else "the search's split"
    console.print(f"[b]confirmed on fresh seeds, reported on {where}:[/]")
    for row in (confirmed["baseline"], *confirmed["candidates"]):
        val, test, difference = row["val"], row["test"], row["difference"]
        colour = "green" if row["beyond_noise"] else "default"
        console.print(f"  [b {colour}]trial {row['trial']}[/]  {escape(row['idea'])}", highlight=False)
        scores = [f"search {_fmt(row['search_score'])}"]
        if val:
            sd = f", sd {val['sd']:.4f}" if val["sd"] is not None else ""
            scores.append(f"fresh seeds {val['mean']:.4f} (n={val['n']}{sd})")
        if test:
            scores.append(f"test {test['mean']:.4f}")
        if row["failed"]:
            scores.append(f"[red]{row['failed']} failed[/]")
        console.print("      " + " · ".join(scores), highlight=False)
        spent = [f"{row['train_seconds']:.1f} s training"] if row["train_seconds"] is not None else []
        if row["params"] is not None:
            spent.append(f"{row['params']:,.0f} params")
        if difference:
            spent.insert(
                0,
                f"{difference['mean']:+.4f} vs baseline, 95 % interval "
                f"[{difference['low']:+.4f}, {difference['high']:+.4f}]",
            )
        if spent:
            console.print("      " + " · ".join(spent), highlight=False)
    colour = "green" if confirmed["improved"] else "yellow"
    console.print(f"[b {colour}]{escape(confirmed['summary'])}[/]", highlight=False)


def _print_llm_usage(llm: dict[str, Any]) -> None:
    table = Table(title="LLM usage", title_justify="left")
    for column in ("role", "model", "calls", "trials", "tokens in", "cached", "tokens out", "dollars"):
        table.add_column(column, justify="left" if column in ("role", "model") else "right")

    def dollars(u: dict[str, Any]) -> str:
        if u["unpriced_calls"] == u["calls"]:
            return "unpriced"
        return f"${u['dollars']:.4f}" + (f" +{u['unpriced_calls']} unpriced" if u["unpriced_calls"] else "")

    for role, u in llm["roles"].items():
        table.add_row(
            role,
            u["model"] or "",
            str(u["calls"]),
            str(u["trials"]),
            f"{u['input_tokens']:,}",
            f"{u['cached_tokens']:,}",
            f"{u['output_tokens']:,}",
            dollars(u),
        )
    t = llm["total"]
    limits = ", ".join(f"{k} {v:g}" for k, v in llm["budget"].items() if v is not None)
    table.add_row(
        "total",
        f"budget: {limits}" if limits else "",
        str(t["calls"]),
        "",
        f"{t['input_tokens']:,}",
        f"{t['cached_tokens']:,}",
        f"{t['output_tokens']:,}",
        dollars(t),
    )
    console.print(table)


GpusOpt = Annotated[
    str | None,
    typer.Option(help="GPUs trials may use, e.g. 0,1 (default: those the process sees, no placement)."),
]
SlotsOpt = Annotated[
    int, typer.Option(help="Trials needing a fraction of a GPU share it: slots per GPU, e.g. 4 for quarters.")
]


def _gpu_pool(gpus: str | None, slots_per_gpu: int) -> GpuPool | None:
    if gpus is None:
        return None
    devices = [d.strip() for d in gpus.split(",") if d.strip()]
    if not devices or slots_per_gpu < 1:
        raise ConfigError(
            f"--gpus {gpus!r} --slots-per-gpu {slots_per_gpu}: name at least one GPU and one slot"
        )
    return GpuPool(devices, slots_per_gpu)


PresetOpt = Annotated[
    str | None, typer.Option(help="Preset of the environment (default: the environment's).")
]
SeedOpt = Annotated[int, typer.Option(help="The search's seed: the strategy's and the proposer's choices.")]


@app.command()
def run(
    environment: Annotated[str, typer.Argument(help="Environment name (see `autoresearch envs`) or folder.")],
    preset: PresetOpt = None,
    strategy: Annotated[str, typer.Option(help=f"One of: {', '.join(STRATEGIES)}.")] = "evolve",
    trials: Annotated[int, typer.Option(help="Trials to run, the baseline included.")] = 10,
    concurrency: Annotated[int, typer.Option(help="Trials in flight at once.")] = 2,
    seed: SeedOpt = 0,
    train_seed: Annotated[
        int,
        typer.Option(help="The seed every search trial trains with; confirmation uses the ones after it."),
    ] = 0,
    confirm_top: Annotated[
        int | None,
        typer.Option(
            help="When the search ends, re-run its best N distinct programs and the baseline on fresh seeds "
            "(default: AUTORESEARCH_CONFIRM_TOP, 3)."
        ),
    ] = None,
    confirm_seeds: Annotated[
        int | None,
        typer.Option(
            help="Fresh seeds of each confirmation; 0 turns it off (default: AUTORESEARCH_CONFIRM_SEEDS, 3)."
        ),
    ] = None,
    budget_seconds: Annotated[
        float | None,
        typer.Option(
            help="Also stop the search once its trials trained this many seconds in all (by the runner's "
            "clock): a compute budget, so that an idea that trains longer spends more of it."
        ),
    ] = None,
    race: Annotated[
        int | None,
        typer.Option(
            help="Re-runs of a child that looks like a new best, within the noise, before it may be a parent "
            "(default: AUTORESEARCH_RACE, 1; 0 turns racing off)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Campaign name (default: ENV-PRESET-TIMESTAMP).")] = None,
    goal: Annotated[
        str, typer.Option(help="The research goal in words; the proposer favours what it names.")
    ] = "",
    proposer_model: Annotated[
        str,
        typer.Option(
            "--proposer",
            help="Who writes ideas: `catalog` (offline, the default), a model such as anthropic:MODEL, "
            "openai:MODEL or openai-compatible:URL:MODEL, or `stand-in` / `stand-in:anthropic` "
            "(the offline stand-in LLM server).",
        ),
    ] = CATALOG,
    implementer_model: Annotated[
        str | None, typer.Option("--implementer", help="Model that writes patches (default: the proposer's).")
    ] = None,
    analyst_model: Annotated[
        str | None,
        typer.Option(
            "--analyst", help="Model that notes on each trial (default: the proposer's; `none`: off)."
        ),
    ] = None,
    ideas_per_call: Annotated[int, typer.Option(help="Ideas the proposer writes per call.")] = 4,
    revisions: Annotated[int, typer.Option(help="Re-prompts of the implementer after a failed patch.")] = 2,
    preflight: Annotated[
        bool, typer.Option(help="Check each LLM patch (syntax, a few smoke-preset steps) before its trial.")
    ] = True,
    max_dollars: Annotated[
        float | None, typer.Option(help="Stop proposing once LLM calls cost this.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Stop proposing once LLM calls used this many.")
    ] = None,
    gpus: GpusOpt = None,
    slots_per_gpu: SlotsOpt = 1,
    role_budget: Annotated[
        list[str] | None,
        typer.Option(
            help="A role's own limit, e.g. implementer:dollars=2 or proposer:tokens=200000; repeatable."
        ),
    ] = None,
    distributed: Annotated[
        bool,
        typer.Option(
            help="Submit the campaign to the cluster (`autoresearch controller` and workers on the same "
            "database and broker) and follow it; Ctrl-C stops following, not the campaign."
        ),
    ] = False,
    api: ApiOpt = None,
) -> None:
    """Start a campaign: propose, implement, run and score trials until the budget is spent."""
    settings = load_settings()
    if api:
        local_only = {"--gpus": gpus, "--role-budget": role_budget, "--distributed": distributed or None}
        local_only |= {"--ideas-per-call": ideas_per_call != 4 or None, "--revisions": revisions != 2 or None}
        local_only |= {"--no-preflight": not preflight or None}
        if given := [option for option, value in local_only.items() if value]:
            raise ConfigError(f"{', '.join(given)}: not available with --api (the cluster runs the campaign)")
        body = {
            "environment": environment,
            "preset": preset,
            "strategy": strategy,
            "trials": trials,
            "concurrency": concurrency,
            "seed": seed,
            "train_seed": train_seed,
            "confirm_top": confirm_top,
            "confirm_seeds": confirm_seeds,
            "race": race,
            "seconds_budget": budget_seconds,
            "name": name,
            "goal": goal or f"improve {environment}",
            "proposer": None if proposer_model == CATALOG else proposer_model,
            "implementer": implementer_model,
            "analyst": analyst_model,
            "max_dollars": max_dollars,
            "max_tokens": max_tokens,
        }
        with _api(api, settings) as client:
            submitted = client.post("/campaigns", body)
            console.print(f"campaign [b]{submitted['name']}[/] submitted to {api}")
            _follow_remote(client, submitted["name"])
        return
    env = find_environment(environment, settings.environment_search_path)
    goal = goal or _default_goal(env)
    agents = agents_config(
        proposer_model,
        implementer=implementer_model,
        analyst=analyst_model,
        ideas_per_call=ideas_per_call,
        revisions=revisions,
        preflight=preflight,
        max_dollars=max_dollars,
        max_tokens=max_tokens,
        role_budgets=role_budget or [],
    )
    if agents is not None:
        check_clients(agents, settings, local_run=not distributed)
    if distributed and gpus is not None:
        raise ConfigError("--gpus places trials on this machine; on the cluster, each GPU worker has its own")
    pool = _gpu_pool(gpus, slots_per_gpu)
    # A broken catalog fails here, before anything is recorded.
    proposer = CatalogProposer(env, goal, preset=preset)
    sandbox = None if distributed else _local_sandbox(settings)
    with _store(settings) as store:
        campaign = create_campaign(
            store,
            env,
            preset=preset,
            strategy=strategy,
            trials=trials,
            concurrency=concurrency,
            seed=seed,
            train_seed=train_seed,
            confirm_top=settings.confirm_top if confirm_top is None else confirm_top,
            confirm_seeds=settings.confirm_seeds if confirm_seeds is None else confirm_seeds,
            race=settings.race if race is None else race,
            seconds_budget=budget_seconds,
            name=name,
            goal=goal,
            agents=agents.model_dump(mode="json") if agents else None,
            distributed=distributed,
        )
        who = f"ideas by {agents.proposer}" if agents else "ideas from the catalog"
        confirmation = (
            f"then the best {campaign.confirm_top} and the baseline on {campaign.confirm_seeds} fresh seeds"
            if campaign.confirm_seeds
            else "no confirmation"
        )
        console.print(
            f"campaign [b]{campaign.name}[/]: {env.name}/{campaign.preset}, {strategy}, "
            f"{trials} search trials"
            + (f" or {budget_seconds:g} s of training" if budget_seconds else "")
            + f" ({confirmation}), {concurrency} at a time, {who}"
            + (", on the cluster" if distributed else "")
        )
        if sandbox is None:  # distributed: the cluster's controller drives it
            _follow(store, campaign, env)
        else:
            _drive(settings, store, campaign, env, sandbox, proposer, pool)


_NO_CONTROLLER_AFTER_S = 20.0


def _follow(store: Store, campaign: Campaign, env: Environment, poll_s: float = 1.0) -> None:
    """Show a distributed campaign as its controller drives it, until it ends or Ctrl-C."""
    seen: dict[int, TrialStatus] = {}
    warned, since = False, time.monotonic()
    try:
        with LiveView(campaign, env, store) as live:
            seen = {t.id: t.status for t in store.list_trials(campaign.id)}
            while True:
                current = store.get_campaign(campaign.id)
                ideas = {idea.id: idea for idea in store.list_ideas(campaign.id)}
                for trial in store.list_trials(campaign.id):
                    if seen.get(trial.id) is trial.status:
                        continue
                    seen[trial.id] = trial.status
                    if trial.status is TrialStatus.RUNNING:
                        live.trial_started(trial, ideas[trial.idea_id])
                    elif trial.status.is_terminal:
                        live.trial_finished(trial, ideas[trial.idea_id])
                if current.status is not CampaignStatus.RUNNING:
                    break
                if not (warned or current.controller) and time.monotonic() - since > _NO_CONTROLLER_AFTER_S:
                    warned = True
                    live.note(
                        "no controller has taken the campaign yet: is `autoresearch controller` running?"
                    )
                time.sleep(poll_s)
    except KeyboardInterrupt:
        console.print(
            f"\nstopped following; the campaign carries on. Follow again: [b]autoresearch resume {campaign.name}[/]"
        )
        return
    _print_outcome(store, _outcome_of(store, store.get_campaign(campaign.id), env), env)


def _follow_remote(client: ApiClient, name: str, poll_s: float = 2.0) -> None:
    """Follow a campaign through the API until it ends (Ctrl-C stops following), then show its report."""
    seen: dict[str, int] = {}
    try:
        while True:
            campaign = client.get(f"/campaigns/{name}")
            counts = {status: n for status, n in campaign["counts"].items() if n}
            if counts != seen:
                seen = counts
                line = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no trials yet"
                console.print(
                    f"[dim]{time.strftime('%H:%M:%S')}[/] {campaign['status']}: {line}", highlight=False
                )
            if campaign["status"] != CampaignStatus.RUNNING:
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        console.print(
            f"\nstopped following; the campaign carries on. Look again: autoresearch show {name} --api URL"
        )
        return
    _print_campaign_report(client.get(f"/reports/campaigns/{name}"))


def _outcome_of(store: Store, campaign: Campaign, env: Environment) -> CampaignOutcome:
    """A finished distributed campaign's outcome, read back from the store."""
    trials = store.list_trials(campaign.id)
    scored = [t for t in trials if t.is_search and t.is_scored and t.score is not None]
    direction = env.spec.metric.direction
    best = min(scored, key=lambda t: direction.sort_key(t.score or 0.0), default=None)
    first = next((t for t in trials if t.number == 0), None)  # the baseline, or its last retry
    searched = [t for t in trials if t.is_search]
    baseline = [t for t in searched if t.idea_id == first.idea_id][-1] if first is not None else None
    return CampaignOutcome(
        campaign=campaign,
        stopped_by_user=campaign.status is CampaignStatus.STOPPED,
        exhausted=False,
        proposer_stopped="",
        best=best,
        baseline=baseline,
        confirmed=verdict(trials, baseline, direction) if baseline is not None else None,
    )


@app.command()
def resume(
    campaign_ref: Annotated[str, typer.Argument(metavar="CAMPAIGN", help="Campaign name or id.")],
    trials: Annotated[int | None, typer.Option(help="Set the campaign's trial budget to this many.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Change how many trials run at once.")] = None,
    max_dollars: Annotated[float | None, typer.Option(help="Set the campaign's LLM dollar budget.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Set the campaign's LLM token budget.")] = None,
    gpus: GpusOpt = None,
    slots_per_gpu: SlotsOpt = 1,
) -> None:
    """Carry on a stopped or killed campaign: finished trials are kept, interrupted ones run again."""
    settings = load_settings()
    with _store(settings) as store:
        campaign = store.get_campaign(campaign_ref)
        if campaign.status is CampaignStatus.CANCELLED:
            raise ConfigError(
                f"campaign {campaign.name!r} was cancelled; start a new one with `autoresearch run`"
            )
        if (trials is not None and trials < 1) or (concurrency is not None and concurrency < 1):
            raise ConfigError("--trials and --concurrency must be at least 1")
        sandbox = None if campaign.distributed else _local_sandbox(settings)
        agents = AgentsConfig.of(campaign.agents)
        if max_dollars is not None or max_tokens is not None:
            if agents is None:
                raise ConfigError(f"campaign {campaign.name!r} uses no LLM: it has no LLM budget to change")
            agents = agents.with_budget(dollars=max_dollars, tokens=max_tokens)
        campaign = store.set_campaign_limits(
            campaign.id,
            trial_budget=trials,
            concurrency=concurrency,
            agents=agents.model_dump(mode="json") if agents else None,
        )
        env = find_environment(campaign.environment, settings.environment_search_path)
        if sandbox is None:  # distributed: its controller takes it up again; this only follows
            store.set_campaign_status(campaign.id, CampaignStatus.RUNNING)
            _follow(store, campaign, env)
        else:
            _drive(settings, store, campaign, env, sandbox, gpus=_gpu_pool(gpus, slots_per_gpu))


def _default_goal(env: Environment) -> str:
    verb = "lower" if env.spec.metric.direction is Direction.MINIMIZE else "raise"
    return f"{verb} {env.spec.metric.name}"


class _UserPatch:
    """Proposes one diff, once, on the baseline: `autoresearch try`."""

    def __init__(self, diff: str, source: str) -> None:
        self.proposal = Proposal(
            f"The patch in {source}.", IdeaOrigin.USER, diff, key=f"user:{source}", against_baseline=True
        )
        self.used = False

    def propose(
        self,
        parent: Trial,
        parent_code: Mapping[str, str],
        lineage: Lineage,
        rng: random.Random,
        surface: str | None = None,
    ) -> Proposal | None:
        if self.used:
            return None
        self.used = True
        return self.proposal


@app.command()
def reproduce(
    ref: Annotated[str, typer.Argument(metavar="TRIAL", help="Trial id, or CAMPAIGN:NUMBER.")],
    seeds: Annotated[
        int,
        typer.Option(
            help="Runs: the first at the trial's own seed, the others on further seeds (its noise)."
        ),
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Run a finished trial again from its record and compare: the score at its own seed against the
    recorded one, within the noise floor; and what changed since (environment, versions, hardware)."""
    settings = load_settings()
    with _store(settings) as store:
        trial = _find_trial(store, ref)
        campaign = store.get_campaign(trial.campaign_id)
        env = find_environment(campaign.environment, settings.environment_search_path)
        ideas = {idea.id: idea for idea in store.list_ideas(campaign.id)}
        confirmed = reports.confirmation_report(
            store.list_trials(campaign.id), ideas, env.spec.metric.direction
        )
    if not trial.is_scored:
        raise ConfigError(f"trial {trial.number} has no score to reproduce ({trial.label or trial.status})")
    sandbox = _local_sandbox(settings)
    with console.status(f"preparing data for {env.name}..."):
        data_dir = prepare_data(env, settings)
    runner = TrialRunner(env, campaign.preset, settings, sandbox, data_dir)
    baseline_val = confirmed["baseline"]["val"] if confirmed else None
    with console.status(f"re-running trial {trial.number} of {campaign.name} ({seeds} run(s))..."):
        found = run_again(
            trial, env, runner, seeds=seeds, campaign_noise=baseline_val["sd"] if baseline_val else None
        )
    result = {
        "campaign": campaign.name,
        "trial": trial.number,
        "recorded": trial.score,
        "runs": [dataclasses.asdict(run) for run in found.runs],
        "difference": found.difference,
        "noise_floor": found.noise_floor,
        "program_noise": found.program_noise,
        "campaign_noise": found.campaign_noise,
        "reproduced": found.reproduced,
        "changed": {key: {"then": then, "now": now} for key, (then, now) in found.changed.items()},
    }
    if as_json:
        _print_json(result)
    else:
        _print_reproduction(result, env)
    if found.reproduced is False:
        raise typer.Exit(1)


def _print_reproduction(result: dict[str, Any], env: Environment) -> None:
    metric = env.spec.metric.name
    console.print(
        f"[b]trial {result['trial']}[/] of {result['campaign']}: recorded {metric} {_fmt(result['recorded'])}"
    )
    for run in result["runs"]:
        outcome = _fmt(run["score"]) if run["score"] is not None else f"[red]{escape(run['failure'])}[/]"
        console.print(f"  re-run at seed {run['seed']}: {outcome}", highlight=False)
    floor = result["noise_floor"]
    difference = result["difference"]
    said = f"difference {difference:+.6f}" if difference is not None else "no score at the recorded seed"
    said += f", noise floor (sd) {floor:.6f}" if floor is not None else ""
    if result["reproduced"] is None:
        console.print(f"[yellow]{said}: no noise floor to judge by; run with --seeds 3[/]")
    elif result["reproduced"]:
        console.print(f"[b green]reproduced: {said}[/]")
    else:
        console.print(f"[b red]not reproduced: {said}[/]")
    for key, change in result["changed"].items():
        console.print(f"  [yellow]{key} changed:[/] {change['then']} -> {change['now']}", highlight=False)


@app.command("try")
def try_patch(
    environment: Annotated[str, typer.Argument(help="Environment name or folder.")],
    patch: Annotated[Path, typer.Option(help="A unified diff against the environment's baseline code.")],
    preset: PresetOpt = None,
    seed: SeedOpt = 0,
    name: Annotated[str | None, typer.Option(help="Campaign name (default: try-ENV-TIMESTAMP).")] = None,
) -> None:
    """Run your own diff through the same runner, beside the baseline, and record both."""
    settings = load_settings()
    try:
        diff = patch.read_text()
    except OSError as exc:
        raise ConfigError(f"{patch}: cannot read: {exc.strerror}") from exc
    env = find_environment(environment, settings.environment_search_path)
    sandbox = _local_sandbox(settings)
    with _store(settings) as store:
        campaign = create_campaign(
            store,
            env,
            preset=preset,
            strategy="best-of-n",
            trials=2,
            concurrency=2,
            seed=seed,
            name=name or f"try-{env.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            goal=f"try {patch.name}",
        )
        _drive(settings, store, campaign, env, sandbox, _UserPatch(diff, patch.name))


# -- workers ------------------------------------------------------------------------------------
@app.command()
def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues to take tasks from: implement, cpu, gpu.")
    ] = "cpu",
    gpus: GpusOpt = None,
    slots_per_gpu: SlotsOpt = 1,
    concurrency: Annotated[
        int,
        typer.Option(
            help="Tasks at once (default 1; with --gpus, every slot): implement workers mostly wait on LLMs."
        ),
    ] = 1,
    name: Annotated[str | None, typer.Option(help="Worker name (default: QUEUES@HOST).")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a worker: implement queued ideas, or run queued trials. With --gpus it runs as many trials at
    once as the GPUs have slots, each placed on a GPU with room for it."""
    from workers import tasks
    from workers.app import QUEUES, make_app  # Celery loads only for this command

    chosen = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(chosen) - set(QUEUES))
    if not chosen or unknown:
        raise ConfigError(f"--queues {queues!r}: choose from {', '.join(QUEUES)}")
    pool = _gpu_pool(gpus, slots_per_gpu)
    if pool is not None and "gpu" not in chosen:
        raise ConfigError("--gpus places trials from the gpu queue: add gpu to --queues")
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {concurrency}")
    tasks.GPUS = pool
    # Every queue runs trial code (implement workers preflight patches on the smoke preset): the sandbox
    # is made now, and a worker that cannot make one refuses to start.
    sandbox = tasks.sandbox()
    if not sandbox.isolated:
        errors.print(f"[bold yellow]warning:[/] {UNSANDBOXED}")
    slots = pool.slots_per_gpu * len(pool.free) if pool is not None else concurrency
    argv = ["worker", "--queues", ",".join(chosen), "--loglevel", loglevel]
    argv += ["--pool", "threads", "--concurrency", str(slots)] if slots > 1 else ["--pool", "solo"]
    argv += ["--hostname", name or f"{'+'.join(chosen)}@%h", "--without-mingle", "--without-gossip"]
    capacity: dict[str, Any] = {"slots": slots, "sandbox": sandbox.mode}
    if pool is not None:
        capacity |= {"gpus": list(pool.free), "slots_per_gpu": pool.slots_per_gpu}
        capacity |= {"gpu_memory_mb": _gpu_memory_mb(list(pool.free))}
    settings = load_settings()
    with (
        _store(settings) as store,
        _registered(store, tasks.worker_name(), chosen, capacity, settings.lease_s),
    ):
        make_app().worker_main(argv)


def _gpu_memory_mb(devices: list[str]) -> dict[str, int]:
    """Each listed GPU's memory as nvidia-smi reports it; empty where there is no nvidia-smi."""
    memory = {index: int(float(total)) for index, total in query_gpus("index", "memory.total")}
    return {d: memory[d] for d in devices if d in memory}


@contextmanager
def _registered(
    store: Store, name: str, queues: list[str], capacity: dict[str, Any], lease_s: float
) -> Iterator[None]:
    """The worker on record with a heartbeat while it runs (`autoresearch workers` lists them)."""
    store.register_worker(name, queues=queues, capacity=capacity)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease_s / 3):
            try:
                store.worker_heartbeat(name)
            except StoreError as exc:
                errors.print(f"[yellow]warning:[/] heartbeat of {name} failed: {exc}")

    beating = threading.Thread(target=beat, name="worker-heartbeat", daemon=True)
    beating.start()
    try:
        yield
    finally:
        stop.set()
        beating.join()
        store.forget_worker(name)


@app.command("workers")
def list_workers(as_json: JsonOpt = False) -> None:
    """List the workers on record: their queues, capacity and last heartbeat."""
    settings = load_settings()
    with _store(settings) as store:
        found = store.list_workers()
    if as_json:
        _print_json([dataclasses.asdict(w) for w in found])
        return
    if not found:
        console.print("no workers on record; start one with `autoresearch worker --queues cpu`")
        return
    table = Table("name", "queues", "slots", "GPUs", "sandbox", "last heartbeat")
    for w in found:
        gpus = ",".join(w.capacity.get("gpus", [])) or "-"
        sandbox = w.capacity.get("sandbox", "-")
        shown = Text(sandbox, style="bold red") if sandbox == "none" else Text(sandbox)
        slots = str(w.capacity.get("slots", 1))
        table.add_row(w.name, ",".join(w.queues), slots, gpus, shown, _ago(w.heartbeat_at))
    console.print(table)
    if any(w.capacity.get("sandbox") == "none" for w in found):
        errors.print(
            f"[bold yellow]warning:[/] a worker runs trials {UNSANDBOXED.removeprefix('trials run ')}"
        )


def _ago(moment: datetime) -> str:
    return f"{(datetime.now(UTC) - moment).total_seconds():.0f} s ago"


@app.command()
def controller(
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Drive every running distributed campaign (`run --distributed`): propose, queue implementations
    and trials for the workers, record what comes back. Run one or more; each campaign has one."""
    from workers.controller import ControllerService  # Celery loads only for this command

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _store(settings) as store:
            ControllerService(store, settings).serve(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (about one per core).")] = 1,
) -> None:
    """Serve the REST API and the dashboard (migrating the database first)."""
    from autoresearch.api.app import serve  # FastAPI loads only for this command

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    serve(host, port, load_settings(), workers)


# -- bringing your own environment --------------------------------------------------------------
env_app = typer.Typer(help="Your own environments: make one, register one, check one.", no_args_is_help=True)
app.add_typer(env_app, name="env")


@env_app.command("new")
def env_new(
    name: Annotated[str, typer.Argument(help="The environment's name, and its folder's.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to make the folder.")] = Path("."),
) -> None:
    """Make a working environment from the template (environment.toml, a protected evaluator, an
    editable train script, a catalog) and register it."""
    settings = load_settings()
    env = register_environment(new_environment(name, directory, settings), settings)
    console.print(f"made {env.root} and registered it; next: autoresearch env check {name}")


@env_app.command("add")
def env_add(
    path: Annotated[Path, typer.Argument(help="An environment folder (holding environment.toml).")],
) -> None:
    """Register an environment folder outside the search path (kept in DATA_DIR/environments.txt)."""
    settings = load_settings()
    env = register_environment(path, settings)
    console.print(f"registered {env.name} at {env.root}")


@env_app.command("check")
def env_check(
    environment: Annotated[str, typer.Argument(help="Environment name or folder.")],
    preset: PresetOpt = None,
    seeds: Annotated[int, typer.Option(min=1, help="Baseline runs, one per seed.")] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Run the baseline on several seeds as a campaign would and report the metric's mean and spread,
    time and memory per run, and any problem with the contract, catalog, evaluator or sandbox.
    Exits 1 when it finds a problem."""
    settings = load_settings()
    env = find_environment(environment, settings.environment_search_path)
    report = check_environment(
        env, preset, settings, seeds=seeds, progress=lambda step: errors.print(f"{step}...")
    )
    if as_json:
        _print_json(report_dict(report))
    else:
        _print_check(report, env)
    if report.problems:
        raise typer.Exit(1)


def _print_check(report: CheckReport, env: Environment) -> None:
    unit = env.spec.metric.unit
    table = Table(
        "seed",
        "outcome",
        report.metric,
        "seconds",
        "peak MB",
        title=f"{report.environment}, preset {report.preset}",
        title_justify="left",
    )
    for run in report.runs:
        table.add_row(
            str(run.seed),
            run.outcome,
            "-" if run.score is None else f"{run.score:.6g}",
            f"{run.seconds:.1f}",
            "-" if run.peak_rss_mb is None else f"{run.peak_rss_mb:,.0f}",
        )
    console.print(table)
    if report.mean is not None:
        scores = report.scores
        spread = (
            ""
            if report.spread is None
            else f" ± {report.spread:.4g} (sample sd; range {min(scores):.6g} to {max(scores):.6g})"
        )
        unit_text = f" {unit}" if unit else ""
        console.print(f"{report.metric}: mean {report.mean:.6g}{unit_text}{spread} over {len(scores)} seeds")
    if report.repeat is not None:
        first, again = report.repeat
        figures = ", ".join(f"{name} {_figure(value)}" for name, value in sorted(first.items()))
        same = "the same" if first == again else "different"
        console.print(f"evaluator on one checkpoint, twice: {same} figures ({figures})")
    console.print(f"protected files hashed: {len(report.protected)}; catalog techniques: {report.techniques}")
    console.print(
        f"test split: {', '.join(env.spec.data.test)} (only confirmations score it)"
        if report.test_split
        else "test split: none (a confirmation is scored on val, the split the search chose by)"
    )
    if report.problems:
        for problem in report.problems:
            errors.print(f"[red]problem:[/] {escape(problem)}")
    else:
        console.print("no problems found")


# -- API tokens ---------------------------------------------------------------------------------
token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    scope: Annotated[
        Scope, typer.Option(help="read: browse; write: also submit and steer; admin: also tokens.")
    ],
    name: Annotated[str, typer.Option(help="What the token is for, shown in listings.")] = "",
) -> None:
    """Create an API token. It is printed once, here, and stored only as a hash."""
    settings = load_settings()
    with _store(settings) as store:
        secret, token = issue_token(store, name=name or f"{scope}-token", scope=scope)
    errors.print(f"token {token.id} ({token.scope}, {token.name!r}); keep it, it is not shown again:")
    console.print(secret, highlight=False, soft_wrap=True)


@token_app.command("list")
def token_list(as_json: JsonOpt = False) -> None:
    """List API tokens (never their secrets)."""
    settings = load_settings()
    with _store(settings) as store:
        tokens = store.list_tokens()
    if as_json:
        _print_json([dataclasses.asdict(t) for t in tokens])
        return
    table = Table("id", "name", "scope", "starts with", "created", "revoked")
    for t in tokens:
        revoked = t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else "-"
        table.add_row(
            str(t.id),
            t.name,
            str(t.scope),
            f"{t.prefix}...",
            t.created_at.strftime("%Y-%m-%d %H:%M"),
            revoked,
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="The token's id (see `token list`).")]) -> None:
    """Revoke an API token: requests with it are refused from now on."""
    settings = load_settings()
    with _store(settings) as store:
        token = store.revoke_token(token_id)
    console.print(f"revoked token {token.id} ({token.name!r})")


# -- browsing -----------------------------------------------------------------------------------
@app.command()
def campaigns(as_json: JsonOpt = False, api: ApiOpt = None) -> None:
    """List campaigns, newest first."""
    settings = load_settings()
    if api:
        with _api(api, settings) as client:
            rows = client.get("/reports/campaigns")
    else:
        with _store(settings) as store:
            rows = reports.campaign_rows(store, reports.direction_finder(settings))
    if as_json:
        _print_json(rows)
        return
    table = Table(title="campaigns", title_justify="left")
    for column in ("id", "name", "environment", "strategy", "status", "trials", "baseline", "best"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            f"{r['environment']}/{r['preset']}",
            r["strategy"],
            r["status"],
            f"{r['trials_done']}/{r['trial_budget']}",
            _fmt(r["baseline_score"]),
            _fmt(r["best_score"]),
        )
    console.print(table)


def _fmt(score: float | None) -> str:
    return f"{score:.4f}" if score is not None else "-"


def _figure(value: float) -> str:
    """A measured figure: a count (bytes, parameters) in full, anything else to six digits."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.6g}"


@app.command()
def show(
    campaign_ref: Annotated[str, typer.Argument(metavar="CAMPAIGN", help="Campaign name or id.")],
    as_json: JsonOpt = False,
    top: Annotated[int, typer.Option(help="Rows of the leaderboard.")] = 10,
    api: ApiOpt = None,
) -> None:
    """A campaign's leaderboard, lineage tree and best diff against the baseline."""
    settings = load_settings()
    report = _campaign_report(settings, campaign_ref, top, api)
    if as_json:
        _print_json(report)
        return
    _print_campaign_report(report)


def _print_campaign_report(report: dict[str, Any]) -> None:
    c = report["campaign"]
    console.print(f"[b]{c['name']}[/] ({c['environment']}/{c['preset']}, {c['strategy']}) {c['status']}")
    if c["goal"]:
        console.print(f"goal: {c['goal']}")
    console.print(", ".join(f"{n} {s}" for s, n in report["counts"].items()))
    board = Table(title="leaderboard (by search score)", title_justify="left")
    for column in ("rank", "trial", "parent", "search score", "confirmed", "test", "idea"):
        board.add_column(column)
    for i, row in enumerate(report["leaderboard"], 1):
        parent = "" if row["parent"] is None else str(row["parent"])
        board.add_row(
            str(i),
            str(row["number"]),
            parent,
            _fmt(row["score"]),
            _fmt(row["confirmed"]),
            _fmt(row["test"]),
            row["idea"],
        )
    console.print(board)
    if report["confirmed"]:
        _print_confirmed(report["confirmed"])
    if report["labels"]:
        console.print("failures: " + ", ".join(f"{label} {n}" for label, n in report["labels"].items()))
    console.print(_lineage_tree(report["lineage"]))
    if report["duplicates"]:
        console.print(f"{len(report['duplicates'])} near-duplicate ideas dropped by the novelty gate")
    if report["llm"]:
        _print_llm_usage(report["llm"])
    if report["best_diff"]:
        console.print(f"[b]best trial {report['best']['number']} against the baseline:[/]")
        _print_diff(report["best_diff"])


def _lineage_tree(nodes: list[dict[str, Any]]) -> Tree:
    tree = Tree("lineage")
    branches: dict[int | None, Tree] = {}
    for node in nodes:  # in order of number, so parents come first
        parent = branches.get(node["parent_id"], tree)
        outcome = (
            _fmt(node["score"]) if node["score"] is not None else f"[red]{node['label'] or node['status']}[/]"
        )
        role = "  [dim](confirmation)[/]" if node.get("role") == TrialRole.CONFIRM else ""
        branches[node["id"]] = parent.add(
            f"{node['number']}  {outcome}  {node['idea']}{role}", highlight=False
        )
    return tree


@app.command()
def trial(
    ref: Annotated[str, typer.Argument(metavar="TRIAL", help="Trial id, or CAMPAIGN:NUMBER.")],
    as_json: JsonOpt = False,
    prompts: Annotated[
        bool, typer.Option("--prompts", help="Print every LLM call's prompt and response in full.")
    ] = False,
    api: ApiOpt = None,
) -> None:
    """One trial: hypothesis, patch attempts, LLM calls, analyst note, log tail, metrics."""
    settings = load_settings()
    if api:
        campaign_ref, number = _split_trial_ref(ref)
        with _api(api, settings) as client:
            report = client.get(f"/reports/campaigns/{campaign_ref}/trials/{number}")
    else:
        with _store(settings) as store:
            report = reports.trial_report(store, _find_trial(store, ref))
    if as_json:
        _print_json(report)
        return
    t, idea = report["trial"], report["idea"]
    status = _status_text(t["status"], t["label"])
    console.print(f"[b]trial {t['number']}[/] of {report['campaign']} (id {t['id']}): {status}")
    console.print(f"idea ({idea['origin']}, {idea['surface'] or '-'}): {idea['hypothesis']}", highlight=False)
    if idea["rationale"]:
        console.print(f"rationale: {idea['rationale']}", highlight=False)
    if t["score"] is not None:
        console.print(f"score: {t['score']:.6f}")
    if t["reason"]:
        console.print(f"reason: {t['reason']}", highlight=False)
    console.print(f"seed {t['seed']}, duration {t['duration_s'] or 0:.1f} s, exit {t['exit_code']}")
    if t["metrics"]:
        console.print("metrics: " + ", ".join(f"{k}={_figure(v)}" for k, v in t["metrics"].items()))
    for patch in report["patches"]:
        if patch["applied"] and not patch["error"]:
            state = "[green]accepted[/]"
        elif patch["applied"]:
            state = f"[red]applied, then rejected: {escape(patch['error'])}[/]"
        else:
            state = f"[red]not applied: {escape(patch['error'])}[/]"
        console.print(f"[b]patch attempt {patch['attempt']}[/] ({state})")
        _print_diff(patch["diff"])
    if report["llm_calls"]:
        console.print("[b]LLM calls[/]")
    for call in report["llm_calls"]:
        u = call["usage"]
        cost = f"${u['dollars']:.4f}" if not u["unpriced_calls"] else "unpriced"
        outcome = f"[red]{escape(call['error'])}[/]" if call["error"] else "ok"
        console.print(
            f"  #{call['id']} {call['role']} {call['template']} {call['model']}: {u['input_tokens']:,} in "
            f"({u['cached_tokens']:,} cached), {u['output_tokens']:,} out, {cost}, "
            f"{call['attempts']} HTTP attempt(s), {call['duration_s']:.1f} s: {outcome}",
            highlight=False,
        )
        if prompts:
            for message in [
                {"role": "system", "content": call["prompt"]["system"]},
                *call["prompt"]["messages"],
            ]:
                console.print(Text(f"  [{message['role']}]\n{message['content']}", style="dim"))
            console.print(Text(f"  [response]\n{call['response']}"))
    if t["analysis"]:
        console.print(f"[b]analyst:[/] {escape(t['analysis'])}", highlight=False)
    if t["log_tail"]:
        console.print("[b]log tail[/]")
        console.print(Text(t["log_tail"]))


def _find_trial(store: Store, ref: str) -> Trial:
    if ":" in ref:
        campaign_ref, number = _split_trial_ref(ref)
        return store.get_trial_by_number(store.get_campaign(campaign_ref).id, number)
    if not ref.isdigit():
        raise ConfigError(f"trial {ref!r}: expected a trial id or CAMPAIGN:NUMBER")
    return store.get_trial(int(ref))


def _split_trial_ref(ref: str) -> tuple[str, int]:
    campaign_ref, sep, number = ref.rpartition(":")
    if not sep or not campaign_ref or not number.isdigit():
        raise ConfigError(f"trial {ref!r}: expected CAMPAIGN:NUMBER with a whole number")
    return campaign_ref, int(number)


def _campaign_report(settings: Settings, campaign_ref: str, top: int, api: str | None) -> dict[str, Any]:
    if api:
        with _api(api, settings) as client:
            report: dict[str, Any] = client.get(f"/reports/campaigns/{campaign_ref}", top=top)
            return report
    with _store(settings) as store:
        campaign = store.get_campaign(campaign_ref)
        return reports.campaign_report(
            store, campaign, reports.direction_finder(settings)(campaign.environment), top=top
        )


def _api(url: str, settings: Settings) -> ApiClient:
    from autoresearch.adapters.api_client import ApiClient  # httpx loads only for --api

    token = settings.api_token.get_secret_value() if settings.api_token else None
    return ApiClient(url, token)
