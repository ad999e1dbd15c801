"""The SQL behind live streams: the event log, read forward from a cursor.

Streams never trust notification payloads for content; they re-read the event log,
so ordering and resumption (`Last-Event-ID`) follow the log's ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from service.db.database import Database
from service.db.namedsql import NamedSql
from service.errors import RequestNotFound
from service.request_states import RequestStatus, Severity
from service.tracking.queries import parse_request_key

STREAM = NamedSql("service.streaming", "sql/stream.sql")

CHANNEL = "reeltrace_events"
LISTEN = f"LISTEN {CHANNEL}"
PING = "SELECT 1"

_FILTERS = {
    "request_id": "events_after_and_request_id",
    "user_id": "events_after_and_user_id",
}


@lru_cache(maxsize=8)
def events_after(filters: frozenset[str]) -> str:
    """Events after a cursor, restricted by the named filters (keys of _FILTERS)."""
    where = "".join(f"\n{STREAM[_FILTERS[f]]}" for f in sorted(filters))
    return f"{STREAM['events_after_head']}{where}\n{STREAM['events_after_tail']}"


@dataclass(frozen=True, slots=True)
class RequestState:
    id: uuid.UUID
    correlation_id: str
    user_id: str
    status: RequestStatus


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of the log with its request's current state: a row of `events_after`,
    and as JSON the `data` of a Server-Sent Event of the monitoring stream."""

    id: int
    request_id: uuid.UUID
    correlation_id: str
    user_id: str
    event_type: str
    severity: Severity
    stage_name: str | None
    message: str | None
    data: dict[str, Any]
    created_at: datetime
    status: RequestStatus
    current_stage: str | None
    progress_percentage: int


class StreamRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def _run(self, statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.database.fetch(statement, params)

    async def request_state(self, key: str) -> RequestState:
        """A request's identity and status, by UUID or correlation ID."""
        parsed = parse_request_key(key)
        if isinstance(parsed, uuid.UUID):
            rows = await self._run(STREAM["state_by_id"], {"id": parsed})
        else:
            rows = await self._run(STREAM["state_by_correlation"], {"correlation_id": parsed})
        if not rows:
            raise RequestNotFound(f"no request with id or correlation id {key}")
        row = rows[0]
        return RequestState(row["id"], row["correlation_id"], row["user_id"], RequestStatus(row["status"]))

    async def max_event_id(self) -> int:
        return int((await self._run(STREAM["max_event_id"], {}))[0]["max_id"])

    async def events_after(
        self,
        after_id: int,
        *,
        request_id: uuid.UUID | None = None,
        user_id: str | None = None,
        skip: Collection[int] = (),
        limit: int = 500,
    ) -> list[StreamEvent]:
        params: dict[str, Any] = {"after_id": after_id, "skip": list(skip), "limit": limit}
        filters = set()
        if request_id is not None:
            params["request_id"] = request_id
            filters.add("request_id")
        if user_id is not None:
            params["user_id"] = user_id
            filters.add("user_id")
        rows = await self._run(events_after(frozenset(filters)), params)
        return [
            StreamEvent(
                id=r["id"],
                request_id=r["request_id"],
                correlation_id=r["correlation_id"],
                user_id=r["user_id"],
                event_type=r["event_type"],
                severity=Severity(r["severity"]),
                stage_name=r["stage_name"],
                message=r["message"],
                data=r["data"] or {},
                created_at=r["created_at"],
                status=RequestStatus(r["status"]),
                current_stage=r["current_stage"],
                progress_percentage=r["progress_percentage"],
            )
            for r in rows
        ]
