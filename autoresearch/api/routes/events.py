"""Server-Sent Events of a campaign's trial state changes, tailing the store's event outbox.

Each message is one state a trial entered: `id:` the event's id, `event: trial`, `data:` JSON
`{number, status, at}`. A client that reconnects sends `Last-Event-ID` (browsers do it themselves) and
misses nothing: ids only grow. A quiet stream sends a comment every so often, so proxies keep it open.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import State

from autoresearch.api.dependencies import ApiSettingsDep, CampaignDep, StoreDep
from autoresearch.api.problems import content, problems
from autoresearch.api.security import CAN_READ
from autoresearch.domain.model import TrialEvent
from autoresearch.errors import AutoresearchError
from autoresearch.services.store import Store

router = APIRouter(prefix="/campaigns/{ref}/events", tags=["events"])
log = logging.getLogger(__name__)
BATCH = 500  # events read per poll; a backlog is sent without waiting between batches
RECONNECT_MS = 1000  # how long a disconnected client waits before it reconnects


def sse_message(event: TrialEvent) -> str:
    data = {"number": event.number, "status": str(event.status), "at": event.at.isoformat()}
    return f"id: {event.id}\nevent: trial\ndata: {json.dumps(data)}\n\n"


async def trial_events(
    store: Store, campaign_id: int, *, after: int, poll_s: float, heartbeat_s: float, state: State
) -> AsyncIterator[str]:
    """Every event after `after`, then new ones as they are written, until the client goes away (the
    server then cancels this generator). `state.event_streams` counts the streams open."""
    state.event_streams += 1
    try:
        yield f"retry: {RECONNECT_MS}\n\n"
        quiet_since = time.monotonic()
        while True:
            read = partial(store.trial_events, campaign_id, after=after, limit=BATCH)
            try:
                events = await anyio.to_thread.run_sync(read)
            except AutoresearchError as exc:  # the database went away: the client reconnects later
                log.warning("event stream of campaign %s ends: %s", campaign_id, exc)
                return
            for event in events:
                yield sse_message(event)
                after = event.id
            if len(events) == BATCH:
                continue
            now = time.monotonic()
            if events:
                quiet_since = now
            elif now - quiet_since >= heartbeat_s:
                yield ": heartbeat\n\n"
                quiet_since = now
            await anyio.sleep(poll_s)
    finally:
        state.event_streams -= 1


@router.get(
    "",
    dependencies=[CAN_READ],
    response_class=StreamingResponse,
    responses=content(
        "text/event-stream",
        "A stream of `event: trial` messages; data is JSON {number, status, at}.",
        {"type": "string"},
    )
    | problems(401, 404, 422),
)
def stream_events(
    request: Request,
    campaign: CampaignDep,
    store: StoreDep,
    api_settings: ApiSettingsDep,
    last_event_id: Annotated[
        int | None, Header(ge=0, description="Resume after this event (sent by reconnecting clients).")
    ] = None,
    after: Annotated[
        int, Query(ge=0, description="Start after this event id; 0 (default) replays from the start.")
    ] = 0,
) -> StreamingResponse:
    """Trial state changes as they happen, from the first (or after `Last-Event-ID`/`after`)."""
    stream = trial_events(
        store,
        campaign.id,
        after=last_event_id if last_event_id is not None else after,
        poll_s=api_settings.events_poll_s,
        heartbeat_s=api_settings.events_heartbeat_s,
        state=request.app.state,
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
