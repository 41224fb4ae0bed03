"""Experiment tracking: each finished trial as a wandb run, grouped by campaign. Off unless
AUTORESEARCH_WANDB_PROJECT is set; wandb's own WANDB_MODE=offline works without a network."""

from __future__ import annotations

from typing import Any

from autoresearch.domain.model import Campaign, Idea, Trial
from autoresearch.errors import ConfigError
from autoresearch.settings import Settings


class WandbTracker:
    """A campaign observer that logs every finished trial as one wandb run (config: the idea, its code
    hash and the preset; history: the training curve parsed from the environment's output; summary:
    the evaluator's verdict)."""

    def __init__(self, campaign: Campaign, project: str, directory: str) -> None:
        try:
            import wandb  # heavy: only when tracking is on
        except ImportError:
            raise ConfigError(
                "AUTORESEARCH_WANDB_PROJECT is set but wandb is not installed: pip install wandb"
            ) from None
        self.wandb: Any = wandb
        self.campaign = campaign
        self.project = project
        self.directory = directory

    def trial_started(self, trial: Trial, idea: Idea) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def trial_finished(self, trial: Trial, idea: Idea) -> None:
        run = self.wandb.init(
            project=self.project,
            group=self.campaign.name,
            name=f"{self.campaign.name}-{trial.number}",
            dir=self.directory,
            reinit="create_new",
            config={
                "campaign": self.campaign.name,
                "environment": self.campaign.environment,
                "preset": self.campaign.preset,
                "trial": trial.number,
                "parent": trial.parent_id,
                "seed": trial.seed,
                "idea": idea.hypothesis,
                "origin": str(idea.origin),
                "surface": idea.surface,
                "code_hash": trial.code_hash,
            },
        )
        try:
            for point in trial.curve:  # the training curve, as the environment printed it
                run.log({k: v for k, v in point.items() if k != "step"}, step=int(point["step"]))
            if trial.metrics:
                run.log(dict(trial.metrics))
            run.summary.update(
                {"status": str(trial.status), "label": str(trial.label or ""), "score": trial.score}
            )
        finally:
            run.finish()


def tracker_for(campaign: Campaign, settings: Settings) -> WandbTracker | None:
    if not settings.wandb_project:
        return None
    return WandbTracker(campaign, settings.wandb_project, str(settings.data_dir))
