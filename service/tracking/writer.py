"""The tracker's plumbing: build events, apply writes, or journal them.

When PostgreSQL is unreachable the tracker degrades as the spec asks: the caller
proceeds, the write goes to the durable journal, and `reeltrace backfill` (or the
background replayer) applies it later. A request with writes waiting in the journal
queues its new writes behind them, so its history is applied in the order it
happened; a request with nothing journaled writes straight to PostgreSQL, so the
service leaves degraded mode as soon as the database answers, not when the journal
has drained.

A run's writes carry its claim's fence (`service.tracking.fence`); a refused one
marks the claim lost and stops the run.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from service.cost.prices import load_prices
from service.cost.pricing import Pricing
from service.errors import ClaimLost, DatabaseUnavailable, ReeltraceError
from service.pipeline.definitions import ASPECT_RATIOS, PIPELINES
from service.tracking.fence import current_claim, fence_of
from service.tracking.journal import Journal, ReplayReport
from service.tracking.repository import TrackingRepository, TransitionResult
from service.tracking.requests import utcnow
from service.tracking.states import RequestStatus, Severity
from service.tracking.writes import EventWrite, LogEvent, TrackingWrite
from telemetry.database import record_write
from telemetry.metrics import Metrics, get_metrics

log = structlog.get_logger("reeltrace.tracker")

# The model of the settings' default (REELTRACE_VEO_MODEL), for trackers built without
# pricing (tests, tools); the runtime passes the configured one.
DEFAULT_VEO_MODEL = "veo-3.1-fast-generate-001"

# The table each kind of write changes (its event row always lands in request_events).
_TABLES = {
    "create": "video_requests",
    "transition": "video_requests",
    "operation": "video_requests",
    "stage": "request_stages",
    "event": "request_events",
    "cost": "video_requests",
}


class TrackingWriter:
    """Applies tracking writes to PostgreSQL, or journals them."""

    def __init__(
        self,
        repository: TrackingRepository,
        journal: Journal,
        *,
        source_service: str = "reeltrace",
        max_retries: int | None = None,
        generation_timeout: float = 300.0,
        lease_seconds: float = 30.0,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        pricing: Pricing | None = None,
    ) -> None:
        self.repository = repository
        self.journal = journal
        self.source_service = source_service
        self.source_host = socket.gethostname()
        self.max_retries = max_retries
        self.generation_timeout = generation_timeout
        self.lease_seconds = lease_seconds
        self.metrics = metrics or get_metrics()
        self.metrics.declare_pipelines(
            PIPELINES, [status.value for status in RequestStatus if status.is_terminal], ASPECT_RATIOS
        )
        self.clock = clock
        self.pricing = pricing or Pricing(load_prices(), DEFAULT_VEO_MODEL)
        self.metrics.declare_costs(PIPELINES, self.pricing.model)

    # --- plumbing ------------------------------------------------------------------

    def _event(
        self,
        request_id: uuid.UUID,
        event_type: str,
        at: datetime,
        *,
        severity: Severity = Severity.INFO,
        stage: str | None = None,
        message: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> EventWrite:
        return EventWrite(
            request_id=request_id,
            event_type=event_type,
            severity=severity,
            stage_name=stage,
            message=message,
            data=data or {},
            created_at=at,
            source_service=self.source_service,
            source_host=self.source_host,
        )

    async def _journal(self, write: TrackingWrite, operation: str) -> None:
        await asyncio.to_thread(self.journal.append, write)
        self.metrics.tracking_journal_pending.inc()

    async def _write(
        self,
        write: TrackingWrite,
        apply: Callable[[], Any],
        operation: str,
        journal_as: Callable[[], TrackingWrite] | None = None,
        admit: Callable[[], None] | None = None,
        **context: Any,
    ) -> Any | None:
        """Apply a write, or journal it (as `journal_as()` makes it, if given) when PostgreSQL
        is unreachable. None means journaled.

        `admit`, if given, runs before the write is journaled and may refuse it by raising
        (the degraded rate limit). A fenced write refused for a lost claim raises ClaimLost,
        after marking the claim lost (which stops its run). The trace records the write as
        `tracking.<event type>` (telemetry.database).
        """
        request_id = write.event.request_id
        name, table, started = f"tracking.{write.event.event_type}", _TABLES[write.op], time.time_ns()
        if self.journal.has_pending() and await asyncio.to_thread(self.journal.holds, request_id):
            # Earlier writes of this request wait in the journal; this one must land after them.
            if admit is not None:
                admit()
            await self._journal(journal_as() if journal_as else write, operation)
            record_write(name, table, started, journaled=True)
            log.warning(
                "tracking_write_queued", operation=operation, reason="journal has pending writes", **context
            )
            return None
        try:
            result = await apply()
        except ClaimLost as exc:
            record_write(name, table, started, error=type(exc).__name__)
            claim = current_claim(request_id)
            if claim is not None:
                raise claim.lose(f"{operation} refused") from exc
            raise
        except DatabaseUnavailable as exc:
            if admit is not None:
                admit()
            await self._journal_failed(write, exc, operation, journal_as, **context)
            record_write(name, table, started, journaled=True)
            return None
        except ReeltraceError as exc:
            record_write(name, table, started, error=type(exc).__name__)
            raise
        record_write(name, table, started)
        return result

    async def _journal_failed(
        self,
        write: TrackingWrite,
        exc: DatabaseUnavailable,
        operation: str,
        journal_as: Callable[[], TrackingWrite] | None,
        **context: Any,
    ) -> None:
        """PostgreSQL could not be reached: count, log and journal the write."""
        self.metrics.tracking_write_failures.labels(operation=operation).inc()
        log.error(
            "tracking_write_failed",
            operation=operation,
            error=str(exc),
            cause=type(exc.__cause__).__name__ if exc.__cause__ else None,
            journaled=True,
            **context,
        )
        await self._journal(journal_as() if journal_as else write, operation)

    # --- the claim ---------------------------------------------------------------------

    async def hold_claim(self, request_id: uuid.UUID) -> None:
        """Before a run calls out: confirm its claim (lengthening its lease) under its fence.

        Raises ClaimLost, after stopping the run, if another run has taken the request
        over. A write from outside any run, and a run whose request is not in PostgreSQL
        yet (its create journaled), pass. While PostgreSQL is unreachable the run goes on
        (degraded mode): no other worker can claim the request through a database this
        process cannot reach either, and the first renewal once it answers settles it.
        """
        claim = current_claim(request_id)
        if claim is None:
            return
        if claim.lost:
            raise claim.lose("claim already lost")
        try:
            held = await self.repository.renew_claim(request_id, claim.generation, self.lease_seconds)
        except DatabaseUnavailable:
            return
        if held is False:
            raise claim.lose("lease renewal refused")

    # --- events ----------------------------------------------------------------------

    async def log_event(
        self,
        request_id: uuid.UUID,
        event_type: str,
        message: str | None = None,
        *,
        severity: Severity = Severity.INFO,
        stage: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        write = LogEvent(
            fence=fence_of(request_id),
            event=self._event(
                request_id,
                event_type,
                self.clock(),
                severity=severity,
                stage=stage,
                message=message,
                data=data,
            ),
        )
        await self._write(
            write,
            lambda: self.repository.log_event(write),
            "event",
            request_id=str(request_id),
            event_type=event_type,
        )

    # --- journal -----------------------------------------------------------------------

    def _record_transition(self, result: TransitionResult) -> None:
        """The logs and metrics of an applied status change (the tracker records them)."""

    async def _apply_replayed(self, write: TrackingWrite) -> object:
        result = await self.repository.apply(write)
        if isinstance(result, TransitionResult) and result.changed:
            # A journaled status change was neither logged nor counted when it happened
            # (its figures come from the database): without this, requests that ended
            # during an outage would be missing from reeltrace_requests_finished_total.
            self._record_transition(result)
        return result

    async def backfill(self) -> ReplayReport:
        """Replay the journal into PostgreSQL, in order, idempotently."""
        report = await self.journal.replay(self._apply_replayed, self.repository.was_applied)
        pending = await asyncio.to_thread(self.journal.pending_count)
        self.metrics.tracking_journal_pending.set(pending)
        if report.applied or report.rejected or report.already_applied:
            log.info(
                "journal_replayed",
                applied=report.applied,
                already_applied=report.already_applied,
                rejected=report.rejected,
                remaining=report.remaining,
            )
        return report
