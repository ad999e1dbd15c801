"""The SQL of webhook deliveries, one named statement each.

A delivery is claimed before each attempt (`claimed_until`, a fresh `claim_token`),
by the run that ended the request (its first attempt) or by any worker's sweep (the
later ones), so one attempt is in flight at a time. Recording an attempt is fenced by
the token, and writes the delivery, its event and the notification stage row in one
statement: what the stage shows is always the delivery's state.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy.exc import IntegrityError

from service.db.database import Database
from service.db.namedsql import NamedSql
from service.errors import NotFoundError, RequestNotFound

DELIVERIES = NamedSql("service.webhooks", "sql/deliveries.sql")

_COLUMNS = """d.id, d.request_id, d.event, d.url, d.host, d.payload, d.outcome, d.attempts,
    d.last_status_code, d.last_latency_ms, d.last_error, d.last_attempt_at, d.next_attempt_at,
    d.deliver_until, d.delivered_at, d.created_at"""
# The request's identity and trace, so an attempt (in any process) logs and traces as
# part of its request.
_REQUEST_COLUMNS = """(SELECT v.correlation_id FROM video_requests v WHERE v.id = d.request_id) AS correlation_id,
    (SELECT v.traceparent FROM video_requests v WHERE v.id = d.request_id) AS traceparent"""


_CLAIMABLE = "d.outcome = 'pending' AND (d.claimed_until IS NULL OR d.claimed_until < now())"


class DeliveryNotFound(NotFoundError):
    """No webhook delivery has that id."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery row as read or claimed (`token` is set on a claimed one)."""

    id: uuid.UUID
    request_id: uuid.UUID
    event: str
    url: str
    host: str
    payload: dict[str, Any]
    outcome: str
    attempts: int
    last_status_code: int | None
    last_latency_ms: float | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    deliver_until: datetime
    delivered_at: datetime | None
    created_at: datetime
    token: uuid.UUID | None = None
    correlation_id: str | None = None
    traceparent: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any], token: uuid.UUID | None = None) -> Delivery:
        return cls(
            **{name: row[name] for name in _FIELDS},
            token=token,
            correlation_id=row.get("correlation_id"),
            traceparent=row.get("traceparent"),
        )


_FIELDS = [name.strip().removeprefix("d.") for name in _COLUMNS.split(",")]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt's result, as `DELIVERIES["record_attempt"]` stores it."""

    outcome: str  # delivered | pending | failed
    at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None
    next_attempt_at: datetime | None
    stage_status: str
    output: dict[str, Any]
    event_type: str
    severity: str
    message: str
    data: dict[str, Any]


class DeliveryRepository:
    def __init__(self, database: Database, *, source_service: str, source_host: str) -> None:
        self.database = database
        self.source_service = source_service
        self.source_host = source_host

    async def _run(self, statement: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return await self.database.fetch(statement, params)

    async def enqueue(
        self,
        delivery_id: uuid.UUID,
        request_id: uuid.UUID,
        event: str,
        url: str,
        host: str,
        payload: dict[str, Any],
        window_seconds: float,
    ) -> Delivery:
        params = {
            "id": delivery_id,
            "request_id": request_id,
            "event": event,
            "url": url,
            "host": host,
            "payload": json.dumps(payload, default=str),
            "window_seconds": window_seconds,
        }
        try:
            rows = await self._run(DELIVERIES["enqueue"], params)
        except (psycopg.errors.ForeignKeyViolation, IntegrityError) as exc:
            raise RequestNotFound(f"no request {request_id}") from exc
        return Delivery.from_row(rows[0])

    async def claim_one(self, delivery_id: uuid.UUID, lease_seconds: float) -> Delivery | None:
        token = uuid.uuid4()
        params = {"id": delivery_id, "lease_seconds": lease_seconds, "token": token}
        rows = await self._run(DELIVERIES["claim_one"], params)
        return Delivery.from_row(rows[0], token) if rows else None

    async def claim_due(self, limit: int, per_host: int, lease_seconds: float) -> list[Delivery]:
        token = uuid.uuid4()
        params = {"limit": limit, "per_host": per_host, "lease_seconds": lease_seconds, "token": token}
        return [Delivery.from_row(row, token) for row in await self._run(DELIVERIES["claim_due"], params)]

    async def record(self, delivery: Delivery, attempt: AttemptRecord) -> Delivery | None:
        """Store the attempt; None if the claim was lost meanwhile (nothing is written)."""
        params = {
            "id": delivery.id,
            "token": delivery.token,
            "outcome": attempt.outcome,
            "status_code": attempt.status_code,
            "latency_ms": attempt.latency_ms,
            "error": attempt.error,
            "at": attempt.at,
            "next_attempt_at": attempt.next_attempt_at,
            "stage_status": attempt.stage_status,
            "output": json.dumps(attempt.output, default=str),
            "ev_uid": uuid.uuid4(),
            "ev_type": attempt.event_type,
            "ev_severity": attempt.severity,
            "ev_message": attempt.message,
            "ev_data": json.dumps(attempt.data, default=str),
            "ev_service": self.source_service,
            "ev_host": self.source_host,
        }
        rows = await self._run(DELIVERIES["record_attempt"], params)
        return Delivery.from_row(rows[0]) if rows else None

    async def redeliver(self, delivery_id: uuid.UUID, window_seconds: float, by: str) -> Delivery:
        params = {
            "id": delivery_id,
            "window_seconds": window_seconds,
            "by": by,
            "ev_uid": uuid.uuid4(),
            "ev_service": self.source_service,
            "ev_host": self.source_host,
        }
        rows = await self._run(DELIVERIES["redeliver"], params)
        if not rows:
            raise DeliveryNotFound(f"no webhook delivery {delivery_id}")
        return Delivery.from_row(rows[0])

    async def for_request(self, request_id: uuid.UUID) -> list[Delivery]:
        return [
            Delivery.from_row(row)
            for row in await self._run(DELIVERIES["for_request"], {"request_id": request_id})
        ]

    async def attempts_for_request(self, request_id: uuid.UUID) -> list[dict[str, Any]]:
        """Each attempt event's data with its time, oldest first."""
        rows = await self._run(DELIVERIES["attempts_for_request"], {"request_id": request_id})
        return [{**row["data"], "at": row["created_at"]} for row in rows]
