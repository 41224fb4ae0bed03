"""What routes take as arguments: the store, the settings, the artifact store, and the campaign or trial
a path names. Each is looked up once per request; a missing campaign or trial is a 404 from here.

FastAPI runs a plain function in its thread pool, and each hop there costs a request more CPU than a
read of one row by a unique key does. So dependencies that read the app's state, or one such row (the
campaign here, the caller's token in `security`), are `async` and read on the event loop; everything
whose reads grow with the data (a trial's diff and log, pages, graphs) runs in the thread pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from autoresearch.adapters.artifacts import ArtifactStore
from autoresearch.api.numbers import TrialNumbers
from autoresearch.api.schemas import NAME_CHARS
from autoresearch.api.settings import ApiSettings
from autoresearch.domain.model import Campaign, Trial
from autoresearch.services.store import Store
from autoresearch.settings import Settings


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _store(request: Request) -> Store:
    return store_of(request)


async def _settings(request: Request) -> Settings:
    return settings_of(request)


async def _api_settings(request: Request) -> ApiSettings:
    api_settings: ApiSettings = request.app.state.api_settings
    return api_settings


async def _trial_numbers(request: Request) -> TrialNumbers:
    numbers: TrialNumbers = request.app.state.trial_numbers
    return numbers


async def _artifacts(request: Request) -> ArtifactStore:
    artifacts: ArtifactStore = request.app.state.artifacts
    return artifacts


StoreDep = Annotated[Store, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]
ApiSettingsDep = Annotated[ApiSettings, Depends(_api_settings)]
ArtifactsDep = Annotated[ArtifactStore, Depends(_artifacts)]
NumbersDep = Annotated[TrialNumbers, Depends(_trial_numbers)]


CampaignRef = Annotated[
    str,
    Path(max_length=NAME_CHARS, description="The campaign's name, or its id.", examples=["nanogpt-speedrun"]),
]


async def _campaign(ref: CampaignRef, store: StoreDep) -> Campaign:
    return store.get_campaign(ref)


CampaignDep = Annotated[Campaign, Depends(_campaign)]


async def _campaign_id(ref: CampaignRef, request: Request, store: StoreDep) -> int:
    """The id of the campaign `ref` names, for routes that need nothing else of it. A campaign keeps its
    name and id for good (none is renamed or deleted), so an id found by name is kept: these routes then
    cost one query less. Only names are kept: a number names a campaign by id only while no campaign has
    it as its name."""
    known: dict[str, int] = request.app.state.campaign_ids
    if (campaign_id := known.get(ref)) is not None:
        return campaign_id
    campaign = store.get_campaign(ref)
    if campaign.name == ref and len(known) < _CAMPAIGN_IDS_KEPT:
        known[ref] = campaign.id
    return campaign.id


_CAMPAIGN_IDS_KEPT = 100_000
CampaignIdDep = Annotated[int, Depends(_campaign_id)]


NumberPath = Annotated[int, Path(ge=0, description="The trial's number in its campaign (0: the baseline).")]


def _trial(
    number: NumberPath,
    campaign: CampaignDep,
    store: StoreDep,
) -> Trial:
    return store.get_trial_by_number(campaign.id, number)


TrialDep = Annotated[Trial, Depends(_trial)]
