"""Status tracking: a request's moves along the state machine, and what they record.

Each change is checked by the state machine in PostgreSQL, writes its event, and
once applied logs the spec's `status_changed` line and records the queueing and
latency metrics (`record_transition`, which a replayed change goes through too).
The generation's long-running operation is stored here as soon as it exists.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import structlog

from service.errors import InvalidStatusTransition
from service.request_states import RequestStatus, Severity
from service.sanitize import sanitize_error
from service.tracking.fence import fence_of
from service.tracking.results import TransitionResult
from service.tracking.run_writes import RunWrites
from service.tracking.write_values import RecordOperation, Transition
from telemetry.metrics import current_exemplar

log = structlog.get_logger("reeltrace.tracker")


class StatusTracking:
    """A request's status changes, and its generation operation."""

    def __init__(self, runs: RunWrites) -> None:
        self.runs = runs
        self.writer = runs.writer

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
        fence: int | None = None,
        take_claim: bool = False,
        close_stages: bool = False,
    ) -> TransitionResult | None:
        """Move a request along the state machine. None means the write was journaled.

        Raises InvalidStatusTransition (after a warning, with nothing written) for any
        change outside the state machine. Setting the current status again is a no-op
        that refreshes completed_at for terminal statuses.

        The write is fenced by `fence` or else by the claim the calling run holds;
        `take_claim` and `close_stages` make it an ending from outside the run (the
        watchdog's): it takes the claim over and closes the stages left open.
        """
        now = self.writer.clock()
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
            fence=fence if fence is not None else fence_of(request_id),
            take_claim=take_claim,
            close_stages=close_stages,
            event=self.writer.event(
                request_id,
                event_type,
                now,
                severity=severity,
                stage=error_stage,
                message=message or error_message or f"status -> {new_status.value}",
                data={"status": new_status.value, **({"video_urls": video_urls} if video_urls else {})},
            ),
        )

        def applied(result: TransitionResult | None) -> None:
            if result is None:
                return
            if not result.changed:
                log.info(
                    "status_unchanged",
                    request_id=str(request_id),
                    status=new_status.value,
                    completed_at=result.completed_at.isoformat() if result.completed_at else None,
                )
                return
            self.record_transition(result)

        try:
            # Inside a run's fold the change goes with the run's next write (the
            # watchdog's and an operator's are sent at once).
            return cast(
                "TransitionResult | None",
                await self.runs.track(
                    write, "transition", applied, request_id=str(request_id), new_status=new_status.value
                ),
            )
        except InvalidStatusTransition as exc:
            log.warning(
                "invalid_status_transition",
                request_id=str(request_id),
                old_status=exc.context.get("old_status"),
                new_status=new_status.value,
            )
            raise

    def record_transition(self, result: TransitionResult) -> None:
        """The logs and metrics of an applied status change (a replayed one's too)."""
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
            self.writer.metrics.request_queue.labels(pipeline=result.pipeline).observe(
                max(queueing, 0.0), exemplar
            )
            log.info("request_queueing", request_id=str(result.request_id), queueing_time_seconds=queueing)
        if result.new_status.is_terminal:
            self.writer.metrics.requests_finished.labels(
                pipeline=result.pipeline, status=result.new_status.value
            ).inc()
            if result.duration_ms is not None:
                seconds = result.duration_ms / 1000
                self.writer.metrics.request_duration.labels(
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
        **fencing: Any,
    ) -> TransitionResult | None:
        return await self.transition(
            request_id,
            RequestStatus.TIMEOUT,
            error_message=error_message,
            error_stage=error_stage,
            error_details=error_details,
            **fencing,
        )

    async def record_operation(
        self, request_id: uuid.UUID, operation_name: str, gcs_prefix: str | None
    ) -> None:
        """Store the generation's long-running operation as soon as it exists."""
        now = self.writer.clock()
        write = RecordOperation(
            request_id=request_id,
            operation_name=operation_name,
            gcs_prefix=gcs_prefix,
            fence=fence_of(request_id),
            event=self.writer.event(
                request_id,
                "operation_started",
                now,
                stage="video_generation",
                message="generation operation started",
                data={"operation_name": operation_name, "gcs_prefix": gcs_prefix},
            ),
        )
        # Folded: the run's next call out (the first poll) sends it first.
        await self.runs.track(
            write, "operation", lambda _: None, request_id=str(request_id), operation_name=operation_name
        )
