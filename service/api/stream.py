"""`GET /api/v1/monitoring/stream`: Server-Sent Events of request changes.

Each event is one row of the event log (its `id` is the SSE id) with the request's
current status, stage and progress. A stream follows one request (`request_id`),
one user (`user_id`), or everything. A client that reconnects with `Last-Event-ID`
(or `last_event_id`) gets every event after that id from the log before live ones;
an id beyond the newest event in the log was never sent, and is refused (422).

A request stream starts at the request's first event and ends after its terminal
event (`request_completed`, `request_failed`, `request_timeout`). Events written
after it (the notification stage runs after the request has finished) are not sent
on that stream; read them from `/requests/{id}/events`. Asking again once the
terminal event was seen answers 204, which tells an EventSource not to reconnect.
User and global streams start at the moment of connection.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from pydantic import TypeAdapter
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from service.api import responses
from service.api.deps import HubDep, RuntimeDep, SettingsDep, read_access
from service.api.schemas import REQUEST_KEY
from service.errors import ValidationFailed
from service.request_states import TERMINAL
from service.streaming.cursor import EventCursor
from service.streaming.listener import Subscription
from service.streaming.repository import StreamEvent, StreamRepository
from service.video_request import IDENTIFIER

router = APIRouter(prefix="/api/v1/monitoring", tags=["monitoring"], dependencies=[read_access])

TERMINAL_EVENTS = frozenset(f"request_{status.value}" for status in TERMINAL)
BATCH = 500
# Catch-up reads happen even without a notification this often, as a backstop.
IDLE_RECHECK_SECONDS = 30.0
# An event's JSON, as a pydantic model of the same fields would write it.
_AS_JSON = TypeAdapter(StreamEvent)


def _resume_point(header: str | None, query: int | None) -> tuple[int | None, str]:
    """The event id to resume after, and the name of where it came from (for errors)."""
    if header is not None and header.strip():
        try:
            value = int(header.strip())
        except ValueError:
            raise ValidationFailed(
                "Last-Event-ID must be an event id (an integer)", field="header.Last-Event-ID"
            ) from None
        if value < 0:
            raise ValidationFailed("Last-Event-ID must be >= 0", field="header.Last-Event-ID")
        return value, "header.Last-Event-ID"
    return query, "query.last_event_id"


def _event(row: StreamEvent) -> ServerSentEvent:
    return ServerSentEvent(data=_AS_JSON.dump_json(row).decode(), id=str(row.id))


async def _follow(
    repo: StreamRepository,
    sub: Subscription,
    cursor: EventCursor,
    first: list[StreamEvent],
    *,
    request_id: uuid.UUID | None,
    user_id: str | None,
) -> AsyncIterator[ServerSentEvent]:
    try:
        rows = first
        while True:
            for row in rows:
                if not cursor.is_new(row.id):
                    continue
                cursor.advance(row.id)
                yield _event(row)
                if request_id is not None and row.event_type in TERMINAL_EVENTS:
                    return
            if len(rows) < BATCH:
                await sub.wait(IDLE_RECHECK_SECONDS)
            rows = await repo.events_after(
                cursor.horizon(), request_id=request_id, user_id=user_id, skip=cursor.sent, limit=BATCH
            )
    finally:
        sub.close()


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "An event stream; each `data:` is a `StreamEvent` as JSON, each `id:` its event id.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": "The request's stream already ended at the given `Last-Event-ID`."},
        **responses.READ_ONE,
    },
)
async def stream(
    runtime: RuntimeDep,
    settings: SettingsDep,
    hub: HubDep,
    request_id: Annotated[
        str | None,
        Query(max_length=64, pattern=REQUEST_KEY, description="Follow one request (UUID or correlation ID)."),
    ] = None,
    user_id: Annotated[
        str | None, Query(min_length=1, max_length=64, pattern=IDENTIFIER, description="Follow one user.")
    ] = None,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, le=2**63 - 1, description="Resume after this event (for clients without headers)."),
    ] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> Response:
    """Live request changes (status, stage, progress) as Server-Sent Events.

    Filter by `request_id` or `user_id` (or both). Every event has an `id`; reconnect
    with `Last-Event-ID` to receive what was missed. Keep-alive comments are sent
    every `REELTRACE_STREAM_PING_SECONDS`. A request's stream ends after its
    terminal event.
    """
    after, given_as = _resume_point(last_event_id_header, last_event_id)
    repo = StreamRepository(runtime.database)
    if after is not None:
        # An id this server never sent (the log has not reached it) would silently skip
        # every event up to it, and a request's stream would never see its end.
        latest = await repo.max_event_id()
        if after > latest:
            raise ValidationFailed(
                f"{given_as.split('.', 1)[1]} {after} is ahead of the event log (latest event id {latest})",
                field=given_as,
            )
    target = await repo.request_state(request_id) if request_id is not None else None
    rid = target.id if target is not None else None
    # Subscribe before the first read: whatever commits after it wakes this stream.
    sub = hub.subscribe(rid)
    try:
        if after is None:
            after = 0 if target is not None else await repo.max_event_id()
        cursor = EventCursor(after)
        first = await repo.events_after(after, request_id=rid, user_id=user_id, limit=BATCH)
        if (
            target is not None
            and target.status in TERMINAL
            and len(first) < BATCH
            and not any(row.event_type in TERMINAL_EVENTS for row in first)
        ):
            # The status was read before the events, so its terminal event (written
            # with it) is at or before `after`: this stream has nothing left to say.
            sub.close()
            return Response(status_code=204)
    except BaseException:
        sub.close()
        raise
    return EventSourceResponse(
        _follow(repo, sub, cursor, first, request_id=rid, user_id=user_id),
        ping=settings.stream_ping_seconds,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(sub.close),
    )
