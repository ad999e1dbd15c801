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
from sqlalchemy import TextClause, text
from sqlalchemy.exc import IntegrityError

from service.db.database import Database
from service.errors import NotFoundError, RequestNotFound

_COLUMNS = """d.id, d.request_id, d.event, d.url, d.host, d.payload, d.outcome, d.attempts,
    d.last_status_code, d.last_latency_ms, d.last_error, d.last_attempt_at, d.next_attempt_at,
    d.deliver_until, d.delivered_at, d.created_at"""
# The request's identity and trace, so an attempt (in any process) logs and traces as
# part of its request.
_REQUEST_COLUMNS = """(SELECT v.correlation_id FROM video_requests v WHERE v.id = d.request_id) AS correlation_id,
    (SELECT v.traceparent FROM video_requests v WHERE v.id = d.request_id) AS traceparent"""

# A repeated enqueue (a resumed run) returns the existing delivery unchanged.
ENQUEUE: TextClause = text(
    f"""
WITH ins AS (
    INSERT INTO webhook_deliveries AS d (id, request_id, event, url, host, payload, next_attempt_at,
                                         deliver_until)
    VALUES (:id, :request_id, :event, :url, :host, CAST(:payload AS jsonb), now(),
            now() + make_interval(secs => :window_seconds))
    ON CONFLICT (request_id, event) DO NOTHING
    RETURNING {_COLUMNS}
)
SELECT * FROM ins
UNION ALL
SELECT {_COLUMNS} FROM webhook_deliveries d
WHERE d.request_id = :request_id AND d.event = :event AND NOT EXISTS (SELECT 1 FROM ins)
"""
)

_CLAIMABLE = "d.outcome = 'pending' AND (d.claimed_until IS NULL OR d.claimed_until < now())"

CLAIM_ONE: TextClause = text(
    f"""
UPDATE webhook_deliveries d
SET claimed_until = now() + make_interval(secs => :lease_seconds), claim_token = :token
WHERE d.id = :id AND {_CLAIMABLE} AND d.next_attempt_at <= now()
RETURNING {_COLUMNS}, {_REQUEST_COLUMNS}
"""
)

# Due deliveries, oldest due first, at most `per_host` in flight per receiver host
# (counting those other sweeps hold): a receiver that hangs or refuses holds that many
# slots, never the sweep, so every other receiver's deliveries still go out.
CLAIM_DUE: TextClause = text(
    f"""
WITH busy AS (
    SELECT host, count(*) AS n FROM webhook_deliveries
    WHERE outcome = 'pending' AND claimed_until >= now()
    GROUP BY host
), ranked AS (
    SELECT d.id, d.host, row_number() OVER (PARTITION BY d.host ORDER BY d.next_attempt_at) AS rn
    FROM webhook_deliveries d
    WHERE {_CLAIMABLE} AND d.next_attempt_at <= now()
), allowed AS (
    SELECT ranked.id FROM ranked LEFT JOIN busy USING (host)
    WHERE ranked.rn + coalesce(busy.n, 0) <= :per_host
), free AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.id IN (SELECT id FROM allowed) AND {_CLAIMABLE} AND d.next_attempt_at <= now()
    ORDER BY d.next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET claimed_until = now() + make_interval(secs => :lease_seconds), claim_token = :token
FROM free
WHERE d.id = free.id
RETURNING {_COLUMNS}, {_REQUEST_COLUMNS}
"""
)

# The attempt's result on the delivery (only while this claim holds it), its event, and
# the notification stage: in progress while retries remain, completed once delivered,
# failed when the window is over. The request's own status is never touched.
RECORD_ATTEMPT: TextClause = text(
    f"""
WITH d AS (
    UPDATE webhook_deliveries d SET
        attempts = d.attempts + 1,
        outcome = :outcome,
        last_status_code = :status_code,
        last_latency_ms = :latency_ms,
        last_error = :error,
        last_attempt_at = CAST(:at AS timestamptz),
        next_attempt_at = CAST(:next_attempt_at AS timestamptz),
        delivered_at = CASE WHEN :outcome = 'delivered' THEN CAST(:at AS timestamptz) END,
        claimed_until = NULL,
        claim_token = NULL,
        updated_at = clock_timestamp()
    WHERE d.id = :id AND d.claim_token = :token
    RETURNING {_COLUMNS}
), st AS (
    UPDATE request_stages s SET
        status = CAST(:stage_status AS stage_status),
        started_at = coalesce(s.started_at, CAST(:at AS timestamptz)),
        completed_at = CASE WHEN :outcome <> 'pending' THEN CAST(:at AS timestamptz) END,
        duration_ms = CASE WHEN :outcome <> 'pending'
                           THEN floor(extract(epoch FROM (CAST(:at AS timestamptz)
                                      - coalesce(s.started_at, CAST(:at AS timestamptz)))) * 1000)::bigint
                      END,
        attempts = greatest(s.attempts, 1),
        output = CAST(:output AS jsonb),
        error_message = :error
    FROM d
    WHERE s.request_id = d.request_id AND s.stage_name = 'notification'
    RETURNING s.request_id
), event AS (
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message, data,
                                created_at, source_service, source_host)
    SELECT :ev_uid, d.request_id, :ev_type, CAST(:ev_severity AS event_severity), 'notification',
           :ev_message, CAST(:ev_data AS jsonb), CAST(:at AS timestamptz), :ev_service, :ev_host
    FROM d
)
SELECT * FROM d
"""
)

# Send again: pending now, with a fresh window; an attempt in flight keeps its claim.
REDELIVER: TextClause = text(
    f"""
WITH d AS (
    UPDATE webhook_deliveries d SET
        outcome = 'pending',
        next_attempt_at = now(),
        deliver_until = greatest(d.deliver_until, now() + make_interval(secs => :window_seconds)),
        delivered_at = NULL,
        updated_at = clock_timestamp()
    WHERE d.id = :id
    RETURNING {_COLUMNS}
), st AS (
    UPDATE request_stages s SET status = 'in_progress', completed_at = NULL, duration_ms = NULL
    FROM d
    WHERE s.request_id = d.request_id AND s.stage_name = 'notification'
    RETURNING s.request_id
), event AS (
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message, data,
                                created_at, source_service, source_host)
    SELECT :ev_uid, d.request_id, 'notification_redelivery', 'info', 'notification',
           'callback redelivery requested', jsonb_build_object('delivery_id', d.id, 'by', CAST(:by AS text)),
           now(), :ev_service, :ev_host
    FROM d
)
SELECT * FROM d
"""
)

FOR_REQUEST: TextClause = text(
    f"""
SELECT {_COLUMNS} FROM webhook_deliveries d WHERE d.request_id = :request_id ORDER BY d.created_at
"""
)

# The attempt events of a request's deliveries, oldest first: the delivery history.
ATTEMPTS_FOR_REQUEST: TextClause = text(
    """
SELECT data, created_at FROM request_events
WHERE request_id = :request_id
  AND event_type IN ('notification_sent', 'notification_attempt_failed', 'notification_gave_up')
ORDER BY id
"""
)


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
    """One attempt's result, as `RECORD_ATTEMPT` stores it."""

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

    async def _run(self, statement: TextClause, params: Mapping[str, Any]) -> list[dict[str, Any]]:
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
            rows = await self._run(ENQUEUE, params)
        except (psycopg.errors.ForeignKeyViolation, IntegrityError) as exc:
            raise RequestNotFound(f"no request {request_id}") from exc
        return Delivery.from_row(rows[0])

    async def claim_one(self, delivery_id: uuid.UUID, lease_seconds: float) -> Delivery | None:
        token = uuid.uuid4()
        params = {"id": delivery_id, "lease_seconds": lease_seconds, "token": token}
        rows = await self._run(CLAIM_ONE, params)
        return Delivery.from_row(rows[0], token) if rows else None

    async def claim_due(self, limit: int, per_host: int, lease_seconds: float) -> list[Delivery]:
        token = uuid.uuid4()
        params = {"limit": limit, "per_host": per_host, "lease_seconds": lease_seconds, "token": token}
        return [Delivery.from_row(row, token) for row in await self._run(CLAIM_DUE, params)]

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
        rows = await self._run(RECORD_ATTEMPT, params)
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
        rows = await self._run(REDELIVER, params)
        if not rows:
            raise DeliveryNotFound(f"no webhook delivery {delivery_id}")
        return Delivery.from_row(rows[0])

    async def for_request(self, request_id: uuid.UUID) -> list[Delivery]:
        return [Delivery.from_row(row) for row in await self._run(FOR_REQUEST, {"request_id": request_id})]

    async def attempts_for_request(self, request_id: uuid.UUID) -> list[dict[str, Any]]:
        """Each attempt event's data with its time, oldest first."""
        rows = await self._run(ATTEMPTS_FOR_REQUEST, {"request_id": request_id})
        return [{**row["data"], "at": row["created_at"]} for row in rows]
