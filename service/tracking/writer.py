"""Tracking's plumbing: build an event, apply a write to PostgreSQL, or journal it.

When PostgreSQL is unreachable the tracker degrades as the spec asks: the caller
proceeds, the write goes to the durable journal, and `reeltrace backfill` (or the
background replayer) applies it later. A request with writes waiting in the journal
queues its new writes behind them, so its history is applied in the order it
happened; a request with nothing journaled writes straight to PostgreSQL, so the
service leaves degraded mode as soon as the database answers, not when the journal
has drained.

A run's writes carry its claim's fence (`service.tracking.fence`); a refused one
marks the claim lost and stops the run. How a run's writes are folded and sent is
`service.tracking.run_writes`; what each kind of write says, the trackers beside it.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from service.errors import ClaimLost, DatabaseUnavailable, ReeltraceError
from service.request_states import Severity
from service.tracking.fence import current_claim
from service.tracking.journal import Journal, ReplayReport
from service.tracking.repository import TrackingRepository
from service.tracking.results import StepResult, TransitionResult
from service.tracking.write_values import EventWrite, Step, TrackingWrite
from telemetry.database import record_write
from telemetry.metrics import Metrics, get_metrics

log = structlog.get_logger("reeltrace.tracker")

# The table each kind of write changes (its event row always lands in request_events).
TABLES = {
    "create": "video_requests",
    "transition": "video_requests",
    "operation": "video_requests",
    "stage": "request_stages",
    "event": "request_events",
    "cost": "video_requests",
    "step": "video_requests",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class TrackingWriter:
    """Applies tracking writes to PostgreSQL, or journals them."""

    def __init__(
        self,
        repository: TrackingRepository,
        journal: Journal,
        *,
        source_service: str = "reeltrace",
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.repository = repository
        self.journal = journal
        self.source_service = source_service
        self.source_host = socket.gethostname()
        self.metrics = metrics or get_metrics()
        self.clock = clock

    def event(
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

    async def write(
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
        `tracking.<event type>`, a step as `tracking.step` (telemetry.database).
        """
        request_id = write.event.request_id
        table, started = TABLES[write.op], time.time_ns()

        def record(**outcome: Any) -> None:
            if isinstance(write, Step):
                # Its changes were recorded where they were made (`RunWrites.track`); this is the
                # statement that sent them.
                record_write("tracking.step", table, started, batch=len(write.parts), **outcome)
                return
            record_write(f"tracking.{write.event.event_type}", table, started, **outcome)

        if self.journal.has_pending() and await asyncio.to_thread(self.journal.holds, request_id):
            # Earlier writes of this request wait in the journal; this one must land after them.
            if admit is not None:
                admit()
            await self._journal(journal_as() if journal_as else write, operation)
            record(journaled=True)
            log.warning(
                "tracking_write_queued", operation=operation, reason="journal has pending writes", **context
            )
            return None
        sent = time.monotonic()
        try:
            result = await apply()
        except ClaimLost as exc:
            record(error=type(exc).__name__)
            claim = current_claim(request_id)
            if claim is not None:
                raise claim.lose(f"{operation} refused") from exc
            raise
        except DatabaseUnavailable as exc:
            if admit is not None:
                admit()
            await self._journal_failed(write, exc, operation, journal_as, **context)
            record(journaled=True)
            return None
        except ReeltraceError as exc:
            record(error=type(exc).__name__)
            raise
        record()
        claim = current_claim(request_id)
        if claim is not None and getattr(write, "fence", None) == claim.generation:
            # The write was checked against the claim under the request's row lock.
            claim.confirmed_at = sent
            if isinstance(write, Step) and write.release_lease:
                claim.released = True
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

    # --- the journal -----------------------------------------------------------------

    async def backfill(self, replayed: Callable[[TransitionResult], None]) -> ReplayReport:
        """Replay the journal into PostgreSQL, in order, idempotently.

        `replayed` records a status change the replay applied: a journaled change was
        neither logged nor counted when it happened (its figures come from the
        database), and without it requests that ended during an outage would be
        missing from reeltrace_requests_finished_total.
        """

        async def apply(write: TrackingWrite) -> object:
            result = await self.repository.apply(write)
            if isinstance(result, StepResult):
                result = result.transition
            if isinstance(result, TransitionResult) and result.changed:
                replayed(result)
            return result

        report = await self.journal.replay(apply, self.repository.was_applied)
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
