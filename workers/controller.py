"""`autoresearch controller`: drives every distributed campaign that is running, one thread each.

A campaign is driven by exactly one controller: it holds the campaign's lease in the database and
renews it; a second controller (another host, a restart) takes the campaign only once the lease
has expired or was released. A restarted controller rebuilds the campaign from the database and
watches the trials already queued or running, so it creates no duplicate children.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass

from autoresearch.adapters.catalog import CatalogProposer
from autoresearch.adapters.tracker import tracker_for
from autoresearch.agents.build import open_agents
from autoresearch.domain.model import Campaign, CampaignStatus, Idea, Role, Trial
from autoresearch.environment import find_environment
from autoresearch.services.campaign import (
    CampaignController,
    CampaignObserver,
    CampaignOutcome,
    ObserverGroup,
)
from autoresearch.services.execution import ClusterExecution
from autoresearch.services.store import Store
from autoresearch.settings import Settings
from workers.app import make_app
from workers.dispatch import CeleryDispatcher

log = logging.getLogger(__name__)


class LogObserver:
    """A campaign's events, as log lines."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign

    def trial_started(self, trial: Trial, idea: Idea) -> None:
        log.info("%s: trial %s queued: %s", self.campaign.name, trial.number, idea.title)

    def trial_finished(self, trial: Trial, idea: Idea) -> None:
        outcome = f"score {trial.score:g}" if trial.score is not None else str(trial.label)
        log.info("%s: trial %s %s: %s", self.campaign.name, trial.number, trial.status, outcome)

    def note(self, message: str) -> None:
        log.info("%s: %s", self.campaign.name, message)


def _observer(campaign: Campaign, settings: Settings) -> CampaignObserver:
    tracker = tracker_for(campaign, settings)
    return ObserverGroup(LogObserver(campaign), tracker) if tracker is not None else LogObserver(campaign)


def drive_campaign(
    store: Store, settings: Settings, campaign: Campaign, cancel: threading.Event
) -> CampaignOutcome:
    """Run a distributed campaign's controller in this thread until it ends or `cancel` is set."""
    env = find_environment(campaign.environment, settings.environment_search_path)
    _, preset = env.preset(campaign.preset)
    queue = "gpu" if env.resources(preset).gpu > 0 else "cpu"
    dispatcher = CeleryDispatcher(make_app(), lambda _trial_id: queue)
    with open_agents(store, campaign, env, settings, None, cancel) as agents:
        execution = ClusterExecution(
            store,
            dispatcher,
            campaign_id=campaign.id,
            run_ahead=campaign.concurrency,  # as many implemented and waiting as there are running
            reconcile_s=settings.reconcile_s,
            why_not_implement=(lambda: agents.agents.spent(Role.IMPLEMENTER)) if agents else lambda: None,
        )
        controller = CampaignController(
            store,
            campaign,
            env,
            None,
            agents.proposer if agents else CatalogProposer(env, campaign.goal, preset=campaign.preset),
            _observer(campaign, settings),
            novelty=agents.novelty if agents else None,
            analyst=agents.analyst if agents else None,
            execution=execution,
        )
        return controller.run(cancel)


@dataclass
class _Driving:
    token: int
    cancel: threading.Event
    thread: threading.Thread


class ControllerService:
    """Take each running distributed campaign nobody drives, drive it, and keep its lease alive."""

    def __init__(self, store: Store, settings: Settings, *, name: str = "", poll_s: float = 2.0) -> None:
        self.store = store
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll_s = poll_s
        self.lease_s = settings.lease_s
        self.driving: dict[int, _Driving] = {}

    def serve(self, stop: threading.Event) -> None:
        log.info("controller %s: driving distributed campaigns", self.name)
        try:
            while True:
                self._renew_and_reap()
                self._take_new()
                if stop.wait(min(self.poll_s, self.lease_s / 3)):
                    break
        finally:
            for driving in self.driving.values():
                driving.cancel.set()
            for campaign_id in list(self.driving):
                self._finish(campaign_id)

    def _take_new(self) -> None:
        for campaign in self.store.list_campaigns():
            if not campaign.distributed or campaign.status is not CampaignStatus.RUNNING:
                continue
            if campaign.id in self.driving:
                continue
            token = self.store.claim_campaign(campaign.id, controller=self.name, lease_s=self.lease_s)
            if token is None:
                continue  # another controller drives it
            cancel = threading.Event()
            thread = threading.Thread(
                target=self._drive, args=(campaign, cancel), name=f"campaign-{campaign.id}", daemon=True
            )
            self.driving[campaign.id] = _Driving(token, cancel, thread)
            log.info("controller %s: took campaign %s", self.name, campaign.name)
            thread.start()

    def _drive(self, campaign: Campaign, cancel: threading.Event) -> None:
        try:
            outcome = drive_campaign(self.store, self.settings, campaign, cancel)
            log.info("campaign %s: %s", campaign.name, outcome.campaign.status)
        except Exception:
            log.exception("campaign %s: its controller failed; another try follows", campaign.name)

    def _renew_and_reap(self) -> None:
        for campaign_id, driving in list(self.driving.items()):
            if not driving.thread.is_alive():
                self._finish(campaign_id)
            elif not self.store.renew_campaign(campaign_id, driving.token, self.lease_s):
                log.warning("controller %s: lost the lease on campaign %s; stopping", self.name, campaign_id)
                driving.cancel.set()
            elif self.store.get_campaign(campaign_id).status is not CampaignStatus.RUNNING:
                driving.cancel.set()  # stopped by its user

    def _finish(self, campaign_id: int) -> None:
        driving = self.driving.pop(campaign_id)
        driving.thread.join()
        self.store.release_campaign(campaign_id, driving.token)
