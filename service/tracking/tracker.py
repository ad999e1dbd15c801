"""The request tracker: every part of reeltrace records a request's life through it.

It enforces the state machine, computes the timing figures, writes events, logs each
step with the spec's fields and records the metrics that follow from tracking facts.
When PostgreSQL is unreachable it degrades as the spec asks: the caller proceeds,
the write goes to the durable journal, and `reeltrace backfill` (or the background
replayer) applies it later. While writes wait in the journal, new writes queue
behind them, so a request's history is applied in the order it happened.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field

from service.errors import InvalidStatusTransition, TrackingUnavailable
from service.pipeline.definitions import DEFAULT_PIPELINE, PIPELINES, get_pipeline
from service.settings import RateLimit
from service.tracking.journal import Journal, ReplayReport
from service.tracking.repository import StageResult, TrackingRepository, TransitionResult
from service.tracking.sanitize import sanitize_error
from service.tracking.states import RequestStatus, Severity, StageStatus
from service.tracking.writes import (
    CreateRequest,
    EventWrite,
    LogEvent,
    RecordOperation,
    StageChange,
    TrackingWrite,
    Transition,
)
from telemetry.correlation import new_correlation_id, request_context
from telemetry.logging import truncate_prompt
from telemetry.metrics import Metrics, current_exemplar, get_metrics

log = structlog.get_logger("reeltrace.tracker")

T = TypeVar("T")


def timeout_message(timeout_seconds: float) -> str:
    """The spec's "Generation timed out after 5 minutes"; the figure follows the setting."""
    if timeout_seconds >= 60 and timeout_seconds % 60 == 0:
        amount, unit = int(timeout_seconds // 60), "minute"
    else:
        amount, unit = timeout_seconds, "second"  # type: ignore[assignment]
    plural = "" if amount == 1 else "s"
    return f"Generation timed out after {amount:g} {unit}{plural}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class NewRequest(BaseModel):
    """What a client asks for; the tracker adds identity, timing and stages."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID | None = None
    user_id: str
    guild_id: str | None = None
    channel_id: str | None = None
    prompt: str
    duration_seconds: int = 8
    aspect_ratio: str = "16:9"
    resolution: str = "720p"
    generate_audio: bool = False
    pipeline: str = DEFAULT_PIPELINE
    parameters: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CreatedRequest:
    id: uuid.UUID
    correlation_id: str
    status: RequestStatus
    created_at: datetime
    created: bool
    """False when the UUID already existed and the existing request was returned."""
    journaled: bool = False
    """True when PostgreSQL was unreachable: the ID is synthetic until backfilled."""


@dataclass
class StageHandle:
    """What a tracked stage body hands back: its output, stored on the stage row."""

    output: dict[str, Any] | None = None


def error_details(exc: BaseException) -> dict[str, Any]:
    """Structured context of a failure, for `error_details` (no traceback: logs have it)."""
    details: dict[str, Any] = {"exception_type": type(exc).__name__}
    for attr in ("code", "retryable"):
        value = getattr(exc, attr, None)
        if value is not None:
            details[attr] = value
    return details


class RequestTracker:
    """Records requests, stages and events in PostgreSQL, or journals them."""

    def __init__(
        self,
        repository: TrackingRepository,
        journal: Journal,
        *,
        source_service: str = "reeltrace",
        max_retries: int | None = None,
        generation_timeout: float = 300.0,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.repository = repository
        self.journal = journal
        self.source_service = source_service
        self.source_host = socket.gethostname()
        self.max_retries = max_retries
        self.generation_timeout = generation_timeout
        self.metrics = metrics or get_metrics()
        self.metrics.declare_pipelines(
            PIPELINES, [status.value for status in RequestStatus if status.is_terminal]
        )
        self.clock = clock

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
        journal_as: TrackingWrite | None = None,
        **context: Any,
    ) -> Any | None:
        """Apply a write, or journal it (as `journal_as` if given) when PostgreSQL is unreachable.

        None means journaled.
        """
        if self.journal.has_pending():
            # Earlier writes wait in the journal; this one must land after them.
            await self._journal(journal_as or write, operation)
            log.warning(
                "tracking_write_queued", operation=operation, reason="journal has pending writes", **context
            )
            return None
        try:
            return await apply()
        except TrackingUnavailable as exc:
            self.metrics.tracking_write_failures.labels(operation=operation).inc()
            log.error(
                "tracking_write_failed",
                operation=operation,
                error=str(exc),
                cause=type(exc.__cause__).__name__ if exc.__cause__ else None,
                journaled=True,
                **context,
            )
            await self._journal(journal_as or write, operation)
            return None

    # --- requests ------------------------------------------------------------------

    async def create_request(
        self,
        new: NewRequest,
        *,
        trace_id: str | None = None,
        traceparent: str | None = None,
        rate_limit: RateLimit | None = None,
    ) -> CreatedRequest:
        """Insert a pending request with its stage rows; a repeated UUID returns the original.

        With `rate_limit`, raises RateLimited (storing nothing) when the user has used
        the window up. If PostgreSQL is unreachable the limit cannot be counted and the
        request is let through: the spec puts the user's request first.
        """
        pipeline = get_pipeline(new.pipeline)
        now = self.clock()
        request_id = new.id or uuid.uuid4()
        correlation_id = new_correlation_id(int(now.timestamp() * 1000))
        params = {
            "duration_seconds": new.duration_seconds,
            "aspect_ratio": new.aspect_ratio,
            "resolution": new.resolution,
            "generate_audio": new.generate_audio,
        }
        write = CreateRequest(
            id=request_id,
            correlation_id=correlation_id,
            pipeline=pipeline.name,
            user_id=new.user_id,
            guild_id=new.guild_id,
            channel_id=new.channel_id,
            prompt=new.prompt,
            duration_seconds=new.duration_seconds,
            aspect_ratio=new.aspect_ratio,
            resolution=new.resolution,
            generate_audio=new.generate_audio,
            parameters=new.parameters,
            trace_id=trace_id,
            traceparent=traceparent,
            created_at=now,
            stages=pipeline.stage_specs(self.max_retries),
            event=self._event(
                request_id,
                "request_created",
                now,
                message=f"{pipeline.name} request created",
                data={"pipeline": pipeline.name, "stages": pipeline.stage_names},
            ),
        )
        context = {
            "request_id": str(request_id),
            "correlation_id": correlation_id,
            "user_id": new.user_id,
            "guild_id": new.guild_id,
            "channel_id": new.channel_id,
            "pipeline": pipeline.name,
            "prompt": truncate_prompt(new.prompt),
            "prompt_length": len(new.prompt),
            "parameters": params,
        }
        # The submitting span (the HTTP request) carries the request's identity too.
        trace.get_current_span().set_attributes(
            {"correlation_id": correlation_id, "request.id": str(request_id), "pipeline": pipeline.name}
        )
        # If journaled, the request runs in this process meanwhile; the lease keeps
        # workers off it once the create is replayed, until the run must have ended.
        leased = write.model_copy(
            update={
                "lease_owner": f"local:{self.source_host}:{os.getpid()}",
                "lease_expires_at": now + timedelta(seconds=pipeline.budget_seconds(self.generation_timeout)),
            }
        )
        with request_context(request_id=request_id, correlation_id=correlation_id, pipeline=pipeline.name):
            result = await self._write(
                write,
                lambda: self.repository.create(write, rate_limit),
                "create",
                journal_as=leased,
                **context,
            )
        if result is None:
            log.warning("request_tracking_degraded", synthetic_request_id=str(request_id), **context)
            self.metrics.requests_created.labels(pipeline=pipeline.name).inc()
            return CreatedRequest(
                request_id, correlation_id, RequestStatus.PENDING, now, True, journaled=True
            )
        if not result.created:
            log.warning(
                "duplicate_request",
                request_id=str(result.id),
                correlation_id=result.correlation_id,
                user_id=new.user_id,
                status=result.status.value,
            )
            return CreatedRequest(result.id, result.correlation_id, result.status, result.created_at, False)
        self.metrics.requests_created.labels(pipeline=pipeline.name).inc()
        log.info("request_created", **context)
        return CreatedRequest(result.id, result.correlation_id, result.status, result.created_at, True)

    async def transition(
        self,
        request_id: uuid.UUID,
        new_status: RequestStatus,
        *,
        error_message: str | None = None,
        error_stage: str | None = None,
        error_details: dict[str, Any] | None = None,
        video_urls: list[str] | None = None,
        operation_name: str | None = None,
        gcs_prefix: str | None = None,
        message: str | None = None,
    ) -> TransitionResult | None:
        """Move a request along the state machine. None means the write was journaled.

        Raises InvalidStatusTransition (after a warning, with nothing written) for any
        change outside the state machine. Setting the current status again is a no-op
        that refreshes completed_at for terminal statuses.
        """
        now = self.clock()
        if error_message is not None:
            error_message = sanitize_error(error_message)
        severity = (
            Severity.ERROR if new_status in (RequestStatus.FAILED, RequestStatus.TIMEOUT) else Severity.INFO
        )
        event_type = (
            "request_started" if new_status == RequestStatus.GENERATING else f"request_{new_status.value}"
        )
        write = Transition(
            request_id=request_id,
            new_status=new_status,
            at=now,
            operation_name=operation_name,
            gcs_prefix=gcs_prefix,
            video_urls=video_urls,
            error_message=error_message,
            error_stage=error_stage,
            error_details=error_details,
            event=self._event(
                request_id,
                event_type,
                now,
                severity=severity,
                stage=error_stage,
                message=message or error_message or f"status -> {new_status.value}",
                data={"status": new_status.value, **({"video_urls": video_urls} if video_urls else {})},
            ),
        )
        try:
            result: TransitionResult | None = await self._write(
                write,
                lambda: self.repository.transition(write),
                "transition",
                request_id=str(request_id),
                new_status=new_status.value,
            )
        except InvalidStatusTransition as exc:
            log.warning(
                "invalid_status_transition",
                request_id=str(request_id),
                old_status=exc.context.get("old_status"),
                new_status=new_status.value,
            )
            raise
        if result is None:
            return None
        if not result.changed:
            log.info(
                "status_unchanged",
                request_id=str(request_id),
                status=new_status.value,
                completed_at=result.completed_at.isoformat() if result.completed_at else None,
            )
            return result
        self._record_transition(result)
        return result

    def _record_transition(self, result: TransitionResult) -> None:
        fields: dict[str, Any] = {
            "request_id": str(result.request_id),
            "correlation_id": result.correlation_id,
            "old_status": result.old_status.value,
            "new_status": result.new_status.value,
            "duration_ms": result.duration_ms,
        }
        if result.new_status in (RequestStatus.FAILED, RequestStatus.TIMEOUT):
            fields["error_message"] = result.error_message
        log.info("status_changed", **fields)
        exemplar = current_exemplar()
        if result.new_status == RequestStatus.GENERATING and result.started_at is not None:
            queueing = (result.started_at - result.created_at).total_seconds()
            self.metrics.request_queue.labels(pipeline=result.pipeline).observe(max(queueing, 0.0), exemplar)
            log.info("request_queueing", request_id=str(result.request_id), queueing_time_seconds=queueing)
        if result.new_status.is_terminal:
            self.metrics.requests_finished.labels(
                pipeline=result.pipeline, status=result.new_status.value
            ).inc()
            if result.duration_ms is not None:
                seconds = result.duration_ms / 1000
                self.metrics.request_duration.labels(
                    pipeline=result.pipeline, status=result.new_status.value, aspect_ratio=result.aspect_ratio
                ).observe(seconds, exemplar)
                log.info(
                    "request_latency",
                    request_id=str(result.request_id),
                    status=result.new_status.value,
                    duration_seconds=seconds,
                    aspect_ratio=result.aspect_ratio,
                )

    async def start_request(self, request_id: uuid.UUID) -> TransitionResult | None:
        return await self.transition(request_id, RequestStatus.GENERATING)

    async def complete_request(self, request_id: uuid.UUID, video_urls: list[str]) -> TransitionResult | None:
        return await self.transition(request_id, RequestStatus.COMPLETED, video_urls=video_urls)

    async def fail_request(
        self,
        request_id: uuid.UUID,
        error_message: str,
        *,
        error_stage: str | None = None,
        error_details: dict[str, Any] | None = None,
    ) -> TransitionResult | None:
        return await self.transition(
            request_id,
            RequestStatus.FAILED,
            error_message=error_message,
            error_stage=error_stage,
            error_details=error_details,
        )

    async def timeout_request(
        self,
        request_id: uuid.UUID,
        error_message: str,
        *,
        error_stage: str | None = None,
        error_details: dict[str, Any] | None = None,
    ) -> TransitionResult | None:
        return await self.transition(
            request_id,
            RequestStatus.TIMEOUT,
            error_message=error_message,
            error_stage=error_stage,
            error_details=error_details,
        )

    async def record_operation(
        self, request_id: uuid.UUID, operation_name: str, gcs_prefix: str | None
    ) -> None:
        """Store the generation's long-running operation as soon as it exists."""
        now = self.clock()
        write = RecordOperation(
            request_id=request_id,
            operation_name=operation_name,
            gcs_prefix=gcs_prefix,
            event=self._event(
                request_id,
                "operation_started",
                now,
                stage="video_generation",
                message="generation operation started",
                data={"operation_name": operation_name, "gcs_prefix": gcs_prefix},
            ),
        )
        await self._write(
            write,
            lambda: self.repository.record_operation(write),
            "operation",
            request_id=str(request_id),
            operation_name=operation_name,
        )

    # --- stages ----------------------------------------------------------------------

    async def _stage(
        self,
        request_id: uuid.UUID,
        stage: str,
        status: StageStatus,
        event_type: str,
        *,
        attempts: int | None = None,
        output: dict[str, Any] | None = None,
        error: str | None = None,
        error_details: dict[str, Any] | None = None,
        severity: Severity = Severity.INFO,
        message: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> StageResult | None:
        now = self.clock()
        error = sanitize_error(error) if error is not None else None
        write = StageChange(
            request_id=request_id,
            stage_name=stage,
            status=status,
            at=now,
            attempts=attempts,
            output=output,
            error_message=error,
            error_details=error_details,
            event=self._event(
                request_id,
                event_type,
                now,
                severity=severity,
                stage=stage,
                message=message or error,
                data={**({"attempt": attempts} if attempts is not None else {}), **(data or {})},
            ),
        )
        result: StageResult | None = await self._write(
            write,
            lambda: self.repository.stage_change(write),
            f"stage_{status.value}",
            request_id=str(request_id),
            stage=stage,
        )
        log.info(
            event_type,
            request_id=str(request_id),
            stage=stage,
            attempt=attempts,
            status=status.value,
            duration_ms=result.duration_ms if result else None,
            progress_percentage=result.progress_percentage if result else None,
            **({"error_message": error} if error else {}),
        )
        return result

    async def start_stage(self, request_id: uuid.UUID, stage: str, attempt: int = 1) -> StageResult | None:
        return await self._stage(
            request_id,
            stage,
            StageStatus.IN_PROGRESS,
            "stage_started",
            attempts=attempt,
            message=f"{stage} started (attempt {attempt})",
        )

    async def complete_stage(
        self, request_id: uuid.UUID, stage: str, output: dict[str, Any] | None = None
    ) -> StageResult | None:
        return await self._stage(
            request_id,
            stage,
            StageStatus.COMPLETED,
            "stage_completed",
            output=output,
            message=f"{stage} completed",
        )

    async def fail_stage(
        self,
        request_id: uuid.UUID,
        stage: str,
        error: str,
        *,
        error_details: dict[str, Any] | None = None,
        attempt: int | None = None,
    ) -> StageResult | None:
        return await self._stage(
            request_id,
            stage,
            StageStatus.FAILED,
            "stage_failed",
            attempts=attempt,
            error=error,
            error_details=error_details,
            severity=Severity.ERROR,
        )

    async def retry_stage(
        self,
        request_id: uuid.UUID,
        stage: str,
        attempt: int,
        error: str,
        *,
        delay_seconds: float | None = None,
        error_details: dict[str, Any] | None = None,
    ) -> StageResult | None:
        """Record that `attempt` failed and another will follow after `delay_seconds`."""
        return await self._stage(
            request_id,
            stage,
            StageStatus.IN_PROGRESS,
            "retry",
            attempts=attempt,
            error=error,
            error_details=error_details,
            severity=Severity.WARNING,
            data={"next_delay_seconds": delay_seconds} if delay_seconds is not None else None,
        )

    async def skip_stage(self, request_id: uuid.UUID, stage: str, reason: str) -> StageResult | None:
        return await self._stage(
            request_id, stage, StageStatus.SKIPPED, "stage_skipped", message=reason, data={"reason": reason}
        )

    @asynccontextmanager
    async def track_stage(
        self,
        request_id: uuid.UUID,
        stage: str,
        *,
        attempt: int = 1,
        will_retry: Callable[[BaseException], bool] = lambda _: False,
        span_ids: dict[str, str] | None = None,
    ) -> AsyncIterator[StageHandle]:
        """Track one stage attempt: `async with tracker.track_stage(id, "rag_retrieval") as st:`.

        Starts the stage row on entry; on a normal exit completes it with `st.output`;
        on an exception fails it (unless `will_retry` says another attempt follows,
        which the caller records with `retry_stage`) and re-raises. Cancellation (a
        worker shutting down) records nothing: the stage resumes elsewhere.
        """
        handle = StageHandle()
        await self._stage(
            request_id, stage, StageStatus.IN_PROGRESS, "stage_started", attempts=attempt,
            message=f"{stage} started (attempt {attempt})", data=span_ids,
        )  # fmt: skip
        try:
            yield handle
        except Exception as exc:
            if not will_retry(exc):
                await self.fail_stage(
                    request_id, stage, str(exc) or type(exc).__name__,
                    error_details=error_details(exc), attempt=attempt,
                )  # fmt: skip
            raise
        await self.complete_stage(request_id, stage, output=handle.output)

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
            event=self._event(
                request_id,
                event_type,
                self.clock(),
                severity=severity,
                stage=stage,
                message=message,
                data=data,
            )
        )
        await self._write(
            write,
            lambda: self.repository.log_event(write),
            "event",
            request_id=str(request_id),
            event_type=event_type,
        )

    # --- journal -----------------------------------------------------------------------

    async def backfill(self) -> ReplayReport:
        """Replay the journal into PostgreSQL, in order, idempotently."""
        report = await self.journal.replay(self.repository.apply, self.repository.was_applied)
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
