"""Request history and monitoring reads.

Every query is timed: one slower than 100 ms is logged with its query type and
parameter count, one slower than 500 ms is logged as a warning. The time is the
statement's own; a wait for a pooled connection is reported beside it (`pool_wait_ms`),
and a wait over the same thresholds is logged on its own (`slow_pool_wait`), since
it calls for a bigger pool or fewer callers rather than a better query.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import TextClause

from service.db.database import Database, Timing
from service.errors import RequestNotFound, ValidationFailed
from service.request_states import RequestStatus
from service.tracking import read_statements, rollup_sql
from service.tracking.read_statements import READS
from service.tracking.rollups import FAR_FUTURE, RELATIVE_ERROR, Window
from service.tracking.schemas import (
    DashboardRead,
    EventRead,
    HourlyBucket,
    LatencyPercentiles,
    Page,
    RequestRead,
    RequestSummary,
)
from telemetry.correlation import is_correlation_id

log = structlog.get_logger("reeltrace.queries")

MAX_PAGE = 500


def encode_cursor(created_at: datetime, request_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{request_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, rid = raw.partition("|")
        return datetime.fromisoformat(at), uuid.UUID(rid)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed("cursor is not a cursor this API returned", field="cursor") from exc


@dataclass(frozen=True, slots=True)
class RequestFilter:
    status: RequestStatus | None = None
    user_id: str | None = None
    guild_id: str | None = None
    pipeline: str | None = None
    since: datetime | None = None


def parse_request_key(key: str | uuid.UUID) -> uuid.UUID | str:
    """A request key as a UUID, or as a correlation ID (returned as is); anything else
    is not found."""
    if isinstance(key, uuid.UUID) or is_correlation_id(key):
        return key
    try:
        return uuid.UUID(key)
    except ValueError:
        raise RequestNotFound(f"{key!r} is neither a request UUID nor a correlation ID") from None


class RequestQueries:
    """Reads for the API, the CLI and operators."""

    def __init__(self, database: Database, *, slow_ms: float = 100.0, very_slow_ms: float = 500.0) -> None:
        self.database = database
        self.slow_ms = slow_ms
        self.very_slow_ms = very_slow_ms

    async def _fetch(
        self, query_type: str, statement: str | TextClause, params: Mapping[str, Any]
    ) -> list[Any]:
        timing = Timing()
        rows = await self.database.fetch(statement, params, timing=timing)
        run_ms, wait_ms = timing.run_s * 1000, timing.wait_s * 1000
        if wait_ms > self.slow_ms:
            emit = log.warning if wait_ms > self.very_slow_ms else log.info
            emit("slow_pool_wait", query_type=query_type, pool_wait_ms=round(wait_ms, 2))
        if run_ms > self.slow_ms:
            emit = log.warning if run_ms > self.very_slow_ms else log.info
            emit(
                "slow_query",
                query_type=query_type,
                parameter_count=len(params),
                duration_ms=round(run_ms, 2),
                pool_wait_ms=round(wait_ms, 2),
                rows=len(rows),
            )
        return rows

    @staticmethod
    def _page_bounds(limit: int, offset: int) -> None:
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if offset < 0:
            raise ValidationFailed("offset must be >= 0", field="offset")

    async def list_requests(
        self,
        filters: RequestFilter,
        *,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        query_type: str = "list_requests",
    ) -> Page[RequestSummary]:
        """Requests newest first, with offset or keyset (cursor) pagination."""
        self._page_bounds(limit, offset)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        present = set()
        for name in ("status", "user_id", "guild_id", "pipeline", "since"):
            value = getattr(filters, name)
            if value is not None:
                params[name] = value.value if isinstance(value, RequestStatus) else value
                present.add(name)
        if cursor:
            if offset:
                # A cursor already says where the page starts; skipping rows past it too
                # would silently drop them from the walk.
                raise ValidationFailed("give either cursor or offset, not both", field="offset")
            params["cursor_at"], params["cursor_id"] = decode_cursor(cursor)
            present.add("cursor")
        rows = await self._fetch(query_type, read_statements.list_requests(frozenset(present)), params)
        items = [RequestSummary.model_validate(row) for row in rows]
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(items) == limit else None
        return Page[RequestSummary](items=items, limit=limit, offset=offset, next_cursor=next_cursor)

    async def user_history(
        self,
        user_id: str,
        *,
        status: RequestStatus | None = None,
        limit: int = 20,
        offset: int = 0,
        cursor: str | None = None,
    ) -> Page[RequestSummary]:
        """A user's requests, newest first; optional status filter."""
        return await self.list_requests(
            RequestFilter(user_id=user_id, status=status),
            limit=limit,
            offset=offset,
            cursor=cursor,
            query_type="user_history",
        )

    async def get_request(self, key: str | uuid.UUID) -> RequestRead:
        """A request with its stages, by UUID or correlation ID."""
        parsed = parse_request_key(key)
        by_id = isinstance(parsed, uuid.UUID)
        params = {"id": parsed if by_id else None, "correlation_id": None if by_id else parsed}
        rows = await self._fetch("request_detail", READS["request_detail"], params)
        if not rows:
            raise RequestNotFound(f"no request with id or correlation id {key}")
        return RequestRead.model_validate(rows[0])

    async def stored_request(self, request_id: uuid.UUID) -> dict[str, Any]:
        """A request's row as stored, every column included (what a repeated `request_id` is
        compared against: a field given its own column needs no read model to name it)."""
        rows = await self._fetch("stored_request", READS["stored_request"], {"id": request_id})
        if not rows:
            raise RequestNotFound(f"no request {request_id}")
        row: dict[str, Any] = rows[0]
        return row

    async def resolve_id(self, key: str | uuid.UUID) -> uuid.UUID:
        """The request UUID for a key: parsed from a UUID, looked up for a correlation ID.

        A UUID is not checked here; callers that find nothing under it check then.
        """
        parsed = parse_request_key(key)
        if isinstance(parsed, uuid.UUID):
            return parsed
        rows = await self._fetch("request_id", READS["id_by_correlation"], {"correlation_id": parsed})
        if not rows:
            raise RequestNotFound(f"no request with id or correlation id {key}")
        found: uuid.UUID = rows[0]["id"]
        return found

    async def events(self, key: str | uuid.UUID, *, after_id: int = 0, limit: int = 500) -> list[EventRead]:
        """The event timeline of a request, oldest first."""
        if not 1 <= limit <= 5000:
            raise ValidationFailed("limit must be between 1 and 5000", field="limit")
        request_id = await self.resolve_id(key)
        rows = await self._fetch(
            "request_events",
            READS["events_of_request"],
            {"id": request_id, "after_id": after_id, "limit": limit},
        )
        if not rows and after_id == 0:
            exists = await self._fetch("request_exists", READS["request_exists"], {"id": request_id})
            if not exists:
                raise RequestNotFound(f"no request {request_id}")
        return [EventRead.model_validate(row) for row in rows]

    async def latest_event(
        self, request_id: uuid.UUID, event_type: str, stage: str | None = None
    ) -> EventRead | None:
        """The most recent event of a type (and stage) for a request: resume bookkeeping."""
        params = {"id": request_id, "event_type": event_type, "stage": stage}
        rows = await self._fetch("latest_event", READS["latest_event"], params)
        return EventRead.model_validate(rows[0]) if rows else None

    async def dashboard(self, *, window_hours: int = 24, exact: bool = False) -> DashboardRead:
        """Counts by status, completed-latency percentiles, failure rate and spend over a window.

        Counts, the average, the failure rate and the spend (the window's and today's,
        since 00:00 UTC) are exact either way. The percentiles
        come from the rollups' sketch (within RELATIVE_ERROR of the exact value) unless
        `exact`, which computes them from the window's rows (a scan of the window).
        """
        if not 1 <= window_hours <= 24 * 90:
            raise ValidationFailed("window_hours must be between 1 and 2160 (90 days)", field="window_hours")
        now = datetime.now(UTC)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if exact:
            row = (await self._fetch("dashboard_exact", read_statements.dashboard(window_hours), {}))[0]
            spend = await self._fetch("dashboard_spend_exact", READS["spend"], {"since": today})
        else:
            window = Window.of(now - timedelta(hours=window_hours), FAR_FUTURE)
            params = {**window.params(), "pipeline": None}
            row = (await self._fetch("dashboard", rollup_sql.DASHBOARD, params))[0]
            today_params = {**Window.of(today, FAR_FUTURE).params(), "pipeline": None}
            spend = await self._fetch("dashboard_spend", rollup_sql.SPEND, today_params)
        counts = {s.value: int(row[s.value]) for s in RequestStatus}
        terminal = counts["completed"] + counts["failed"] + counts["timeout"]
        pcts = row["percentiles"] or [None, None, None]
        return DashboardRead(
            window_hours=window_hours,
            since=row["since"],
            total_requests=sum(counts.values()),
            counts_by_status=counts,
            completed_latency=LatencyPercentiles(
                p50_ms=pcts[0],
                p95_ms=pcts[1],
                p99_ms=pcts[2],
                avg_ms=row["avg_ms"],
                estimated=not exact,
                relative_error=None if exact else RELATIVE_ERROR,
            ),
            failure_rate_pct=(
                round(100.0 * (counts["failed"] + counts["timeout"]) / terminal, 2) if terminal else None
            ),
            active_requests=int(row["active"]),
            spend_usd=float(row["spend_usd"]),
            spend_today_usd=float(spend[0]["spend_usd"]),
        )

    async def hourly_metrics(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        pipeline: str | None = None,
        exact: bool = False,
    ) -> list[HourlyBucket]:
        """Hourly buckets of counts, failure rate and durations (stages included).

        Counts and averages are exact either way; P50 and P95 come from the rollups' sketch
        (within RELATIVE_ERROR) unless `exact`, which reads the window's rows.
        """
        given_until = until is not None
        until = until or datetime.now(UTC)
        since = since or until - timedelta(hours=24)
        if since >= until:
            # Without `until` the window ends now: say so, or the message names a value never sent.
            bound = "until" if given_until else "now (until is not given)"
            raise ValidationFailed(f"since must be before {bound}", field="since")
        params: dict[str, Any] = {"since": since, "until": until, "pipeline": pipeline}
        if exact:
            rows = await self._fetch("hourly_metrics_exact", READS["hourly"], params)
            stage_rows = await self._fetch("hourly_stage_metrics_exact", READS["hourly_stages"], params)
        else:
            # Without `until` the window is open-ended: the current hour is read whole.
            params.update(Window.of(since, until if given_until else FAR_FUTURE).params())
            rows = await self._fetch("hourly_metrics", rollup_sql.HOURLY, params)
            stage_rows = await self._fetch("hourly_stage_metrics", rollup_sql.HOURLY_STAGES, params)
        per_stage: dict[datetime, dict[str, float]] = {}
        for s in stage_rows:
            per_stage.setdefault(s["hour"], {})[s["stage_name"]] = s["avg_duration_ms"]
        return [
            HourlyBucket.model_validate(
                {
                    **row,
                    "stage_avg_duration_ms": per_stage.get(row["hour"], {}),
                    "p95_estimated": not exact,
                    "p95_relative_error": None if exact else RELATIVE_ERROR,
                }
            )
            for row in rows
        ]

    async def oldest_active_ages(self) -> dict[str, float]:
        """Seconds the oldest pending request has waited and the oldest generating one has run (0 if none)."""
        rows = await self._fetch("oldest_active", READS["oldest_active"], {})
        ages = {"pending": 0.0, "generating": 0.0}
        ages.update({row["status"]: float(row["age_seconds"]) for row in rows})
        return ages
