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

from sqlalchemy import TextClause, text

from service.db.database import Database
from service.errors import RequestNotFound
from service.tracking.queries import parse_request_key
from service.tracking.states import RequestStatus, Severity

CHANNEL = "reeltrace_events"
LISTEN = f"LISTEN {CHANNEL}"
PING = "SELECT 1"

_STATE_COLUMNS = "id, correlation_id, user_id, status"
STATE_BY_ID: TextClause = text(f"SELECT {_STATE_COLUMNS} FROM video_requests WHERE id = :id")
STATE_BY_CORRELATION: TextClause = text(
    f"SELECT {_STATE_COLUMNS} FROM video_requests WHERE correlation_id = :correlation_id"
)
MAX_EVENT_ID: TextClause = text("SELECT coalesce(max(id), 0) AS max_id FROM request_events")

_FILTERS = {
    "request_id": "e.request_id = :request_id",
    "user_id": "r.user_id = :user_id",
}


@lru_cache(maxsize=8)
def events_after(filters: frozenset[str]) -> TextClause:
    """Events after a cursor (skipping ids already sent), with their request's current state."""
    where = "".join(f" AND {_FILTERS[f]}" for f in sorted(filters))
    return text(
        f"""
SELECT e.id, e.request_id, r.correlation_id, r.user_id, e.event_type, e.severity, e.stage_name,
       e.message, e.data, e.created_at, r.status, r.current_stage, r.progress_percentage
FROM request_events e
JOIN video_requests r ON r.id = e.request_id
WHERE e.id > :after_id AND NOT (e.id = ANY(CAST(:skip AS bigint[]))){where}
ORDER BY e.id
LIMIT :limit
"""
    )


@dataclass(frozen=True, slots=True)
class RequestState:
    id: uuid.UUID
    correlation_id: str
    user_id: str
    status: RequestStatus


@dataclass(frozen=True, slots=True)
class StreamRow:
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

    async def _run(self, statement: TextClause, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.database.fetch(statement, params)

    async def request_state(self, key: str) -> RequestState:
        """A request's identity and status, by UUID or correlation ID."""
        parsed = parse_request_key(key)
        if isinstance(parsed, uuid.UUID):
            rows = await self._run(STATE_BY_ID, {"id": parsed})
        else:
            rows = await self._run(STATE_BY_CORRELATION, {"correlation_id": parsed})
        if not rows:
            raise RequestNotFound(f"no request with id or correlation id {key}")
        row = rows[0]
        return RequestState(row["id"], row["correlation_id"], row["user_id"], RequestStatus(row["status"]))

    async def max_event_id(self) -> int:
        return int((await self._run(MAX_EVENT_ID, {}))[0]["max_id"])

    async def events_after(
        self,
        after_id: int,
        *,
        request_id: uuid.UUID | None = None,
        user_id: str | None = None,
        skip: Collection[int] = (),
        limit: int = 500,
    ) -> list[StreamRow]:
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
            StreamRow(
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
