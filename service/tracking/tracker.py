"""The request tracker: every part of reeltrace records a request's life through it.

It enforces the state machine, computes the timing figures, writes events, logs each
step with the spec's fields and records the metrics that follow from tracking facts.
Stage tracking is in `stage_tracking`, the apply-or-journal plumbing in `writer`.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Any, cast

import structlog
from opentelemetry import trace

from service.cost.budgets import BudgetDefaults
from service.errors import InvalidStatusTransition
from service.request_states import RequestStatus, Severity
from service.sanitize import sanitize_error
from service.settings import RateLimit
from service.tracking.cost_tracking import CostTracking
from service.tracking.fence import fence_of
from service.tracking.local_limit import LocalRateCount
from service.tracking.pipelines import tracked
from service.tracking.requests import CreatedRequest, timeout_message
from service.tracking.results import TransitionResult
from service.tracking.stage_tracking import StageHandle, StageTracking, error_details
from service.tracking.write_values import CreateRequest, RecordOperation, Transition
from service.video_request import VideoRequest
from telemetry.correlation import new_correlation_id, request_context
from telemetry.logging import truncate_prompt
from telemetry.metrics import current_exemplar

__all__ = [
    "CreatedRequest",
    "RequestTracker",
    "StageHandle",
    "error_details",
    "timeout_message",
]

log = structlog.get_logger("reeltrace.tracker")


class RequestTracker(StageTracking, CostTracking):
    """Records requests, stages and events in PostgreSQL, or journals them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The per-user limit while PostgreSQL cannot count it (see local_limit).
        self.local_rate = LocalRateCount()

    # --- requests ------------------------------------------------------------------

    async def create_request(
        self,
        new: VideoRequest,
        *,
        trace_id: str | None = None,
        traceparent: str | None = None,
        rate_limit: RateLimit | None = None,
        budget: BudgetDefaults | None = None,
    ) -> CreatedRequest:
        """Insert a pending request with its stage rows; a repeated UUID returns the original.

        With `rate_limit`, raises RateLimited (storing nothing) when the user has used
        the window up. If PostgreSQL is unreachable the limit cannot be counted and the
        request is let through: the spec puts the user's request first. With `budget`,
        raises BudgetExceeded (storing nothing) when the request's estimated cost would
        take its user or guild past a budget; unreachable PostgreSQL lets it through too.
        """
        pipeline = tracked(self.pipelines, new.pipeline)
        now = self.clock()
        request_id = new.request_id or uuid.uuid4()
        correlation_id = new_correlation_id(int(now.timestamp() * 1000))
        quote = self.pricing.quote(
            new.duration_seconds,
            new.resolution,
            new.generate_audio,
            new.sample_count or 1,
        )
        params = {
            "duration_seconds": new.duration_seconds,
            "aspect_ratio": new.aspect_ratio,
            "resolution": new.resolution,
            "generate_audio": new.generate_audio,
        }
        write = CreateRequest(
            id=request_id,
            correlation_id=correlation_id,
            request=new,
            trace_id=trace_id,
            traceparent=traceparent,
            created_at=now,
            stages=list(pipeline.stages),
            estimated_cost_usd=quote.estimated_cost_usd,
            usd_per_second=quote.usd_per_second,
            price_version=quote.version,
            event=self._event(
                request_id,
                "request_created",
                now,
                message=f"{pipeline.name} request created",
                data={
                    "pipeline": pipeline.name,
                    "stages": pipeline.stage_names,
                    "estimated_cost_usd": None
                    if quote.estimated_cost_usd is None
                    else float(quote.estimated_cost_usd),
                    "price_version": quote.version,
                },
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

        def leased() -> CreateRequest:
            # If journaled, the request runs in this process meanwhile; the lease keeps
            # workers off it once the create is replayed, until the run must have ended.
            # Built only then: a submission while PostgreSQL is up never needs it.
            return write.model_copy(
                update={
                    "lease_owner": f"local:{self.source_host}:{os.getpid()}",
                    "lease_expires_at": now + timedelta(seconds=pipeline.budget_seconds),
                }
            )

        admit = None
        if rate_limit is not None:
            limit = rate_limit

            def admit() -> None:
                self.local_rate.admit(new.user_id, limit)

        with request_context(request_id=request_id, correlation_id=correlation_id, pipeline=pipeline.name):
            result = await self._write(
                write,
                lambda: self.repository.create(write, rate_limit, budget),
                "create",
                journal_as=leased,
                admit=admit,
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
        if rate_limit is not None:
            self.local_rate.record(new.user_id, rate_limit)
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
            fence=fence if fence is not None else fence_of(request_id),
            take_claim=take_claim,
            close_stages=close_stages,
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
            self._record_transition(result)

        try:
            # Inside a run's fold the change goes with the run's next write (the
            # watchdog's and an operator's are sent at once).
            return cast(
                "TransitionResult | None",
                await self._track(
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
        now = self.clock()
        write = RecordOperation(
            request_id=request_id,
            operation_name=operation_name,
            gcs_prefix=gcs_prefix,
            fence=fence_of(request_id),
            event=self._event(
                request_id,
                "operation_started",
                now,
                stage="video_generation",
                message="generation operation started",
                data={"operation_name": operation_name, "gcs_prefix": gcs_prefix},
            ),
        )
        # Folded: the run's next call out (the first poll) sends it first.
        await self._track(
            write, "operation", lambda _: None, request_id=str(request_id), operation_name=operation_name
        )
