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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import structlog

from service.cost.prices import load_prices
from service.cost.pricing import Pricing
from service.errors import ClaimLost, DatabaseUnavailable, ReeltraceError
from service.request_states import RequestStatus, Severity
from service.tracking.fence import current_claim, fence_of
from service.tracking.folding import Applied, Fold, current_fold, fold_for, part_request_id
from service.tracking.journal import Journal, ReplayReport
from service.tracking.pipelines import TrackedPipelines
from service.tracking.repository import TrackingRepository
from service.tracking.requests import utcnow
from service.tracking.results import StepResult, TransitionResult
from service.tracking.write_values import EventWrite, LogEvent, StageChange, Step, StepPart, TrackingWrite
from service.video_request import ASPECT_RATIOS
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
    "step": "video_requests",
}

# A run whose claim a write or a renewal confirmed this recently calls out without
# confirming it again: no other worker can claim a request whose lease has not
# expired, and the watchdog's ending of a run this young is no likelier than one
# landing during the call itself (which the claim check never covered).
CLAIM_FRESH_SECONDS = 1.0


def _part_result(result: Any, part: StepPart) -> Any:
    """A part's own result within a step's (None when journaled)."""
    if result is None:
        return None
    if isinstance(part, StageChange):
        return result.stages.get(part.stage_name)
    return result.transition if part.op == "transition" else None


class TrackingWriter:
    """Applies tracking writes to PostgreSQL, or journals them."""

    def __init__(
        self,
        repository: TrackingRepository,
        journal: Journal,
        *,
        pipelines: TrackedPipelines,
        source_service: str = "reeltrace",
        lease_seconds: float = 30.0,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        pricing: Pricing | None = None,
    ) -> None:
        self.repository = repository
        self.journal = journal
        self.source_service = source_service
        self.source_host = socket.gethostname()
        self.pipelines = pipelines
        self.lease_seconds = lease_seconds
        self.metrics = metrics or get_metrics()
        self.metrics.declare_pipelines(
            pipelines, [status.value for status in RequestStatus if status.is_terminal], ASPECT_RATIOS
        )
        self.clock = clock
        self.pricing = pricing or Pricing(load_prices(), DEFAULT_VEO_MODEL)
        self.metrics.declare_costs(pipelines, self.pricing.model)

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
        table, started = _TABLES[write.op], time.time_ns()

        def record(**outcome: Any) -> None:
            if isinstance(write, Step):
                # Its changes were recorded where they were made (`_track`); this is the
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

    # --- the claim ---------------------------------------------------------------------

    async def hold_claim(self, request_id: uuid.UUID) -> None:
        """Before a run calls out: confirm its claim (lengthening its lease) under its fence.

        Raises ClaimLost, after stopping the run, if another run has taken the request
        over. A write from outside any run, and a run whose request is not in PostgreSQL
        yet (its create journaled), pass. While PostgreSQL is unreachable the run goes on
        (degraded mode): no other worker can claim the request through a database this
        process cannot reach either, and the first renewal once it answers settles it.
        """
        fold = fold_for(request_id)
        if fold is not None and fold.parts:
            # What the run did so far lands before it calls out (and confirms the claim).
            await self._flush(fold)
        claim = current_claim(request_id)
        if claim is None:
            return
        if claim.lost:
            raise claim.lose("claim already lost")
        sent = time.monotonic()
        if sent - claim.confirmed_at < CLAIM_FRESH_SECONDS:
            return
        try:
            held = await self.repository.renew_claim(request_id, claim.generation, self.lease_seconds)
        except DatabaseUnavailable:
            return
        if held is False:
            raise claim.lose("lease renewal refused")
        if held:
            claim.confirmed_at = sent

    # --- folding -----------------------------------------------------------------------

    @asynccontextmanager
    async def folding(self, request_id: uuid.UUID) -> AsyncIterator[None]:
        """Fold the calling run's writes for `request_id` (see `service.tracking.folding`).

        Leaving the block sends what waits, however the run ended (a run that stopped
        part-way still records what it did), except after a lost claim, whose writes
        would be refused.
        """
        if fold_for(request_id) is not None:
            yield
            return
        fold = Fold(request_id)
        token = current_fold.set(fold)
        try:
            try:
                yield
            except ClaimLost:
                fold.take()
                raise
            except BaseException:
                if fold.parts:
                    try:
                        await asyncio.shield(self._flush(fold))
                    except Exception as exc:  # the run's own error is the one to raise
                        log.warning("tracking_flush_failed", request_id=str(request_id), error=str(exc))
                raise
            if fold.parts:
                await self._flush(fold)
        finally:
            current_fold.reset(token)

    async def flush(self, request_id: uuid.UUID) -> None:
        """Send what the calling run has folded for `request_id` (before reading it back)."""
        fold = fold_for(request_id)
        if fold is not None and fold.parts:
            await self._flush(fold)

    def release_with_last_write(self, request_id: uuid.UUID) -> None:
        """The run is over: its last folded write also clears its lease."""
        fold = fold_for(request_id)
        if fold is not None and fold.parts and current_claim(request_id) is not None:
            fold.release_lease = True

    async def _track(
        self, part: StepPart, operation: str, applied: Applied, *, now: bool = False, **context: Any
    ) -> Any:
        """Write `part`, or fold it into the run's next write (`now`: send it at once).

        `applied` gets the part's result once it is written (None when journaled). The
        result is returned when the part was sent now, else None.
        """
        request_id = part_request_id(part)
        fold = fold_for(request_id)
        if fold is None:
            result = await self._write(part, lambda: self.repository.apply(part), operation, **context)
            applied(result)
            return result
        if not fold.accepts(part):
            await self._flush(fold)
        fold.add(part, applied, operation)
        record_write(f"tracking.{part.event.event_type}", _TABLES[part.op], time.time_ns(), folded=True)
        return await self._flush(fold, last=part) if now else None

    async def _flush(self, fold: Fold, last: StepPart | None = None) -> Any:
        """Send the fold's parts as one write; returns the result of `last`, if given."""
        parts, applied, operations, release = fold.take()
        if not parts:
            return None
        # Always a step, even of one change: its changes are already in the trace.
        write = Step(request_id=fold.request_id, fence=parts[0].fence, parts=parts, release_lease=release)
        operation = "+".join(operations)
        result = await self._write(
            write, lambda: self.repository.apply(write), operation, request_id=str(fold.request_id)
        )
        found: Any = None
        for part, done in zip(parts, applied, strict=True):
            part_result = _part_result(result, part)
            done(part_result)
            if part is last:
                found = part_result
        return found

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
        await self._track(write, "event", lambda _: None, request_id=str(request_id), event_type=event_type)

    # --- journal -----------------------------------------------------------------------

    def _record_transition(self, result: TransitionResult) -> None:
        """The logs and metrics of an applied status change (the tracker records them)."""

    async def _apply_replayed(self, write: TrackingWrite) -> object:
        result = await self.repository.apply(write)
        if isinstance(result, StepResult):
            result = result.transition
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
