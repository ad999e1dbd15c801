"""Creating a request: its row and stage rows, its estimate, the limits it must pass.

A created request comes back as `CreatedRequest`. While PostgreSQL is unreachable
the create is journaled and the request goes ahead under a synthetic ID; the
per-user rate limit is then counted in this process (`local_limit`).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from opentelemetry import trace

from service.cost.budgets import BudgetDefaults
from service.cost.pricing import Pricing
from service.request_states import RequestStatus
from service.settings import RateLimit
from service.tracking.local_limit import LocalRateCount
from service.tracking.pipelines import TrackedPipelines, tracked
from service.tracking.write_values import CreateRequest
from service.tracking.writer import TrackingWriter
from service.video_request import VideoRequest
from telemetry.correlation import new_correlation_id, request_context
from telemetry.logging import truncate_prompt

log = structlog.get_logger("reeltrace.tracker")


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


class RequestCreation:
    """Creates requests of the pipelines it is told, priced by `pricing`."""

    def __init__(self, writer: TrackingWriter, pipelines: TrackedPipelines, pricing: Pricing) -> None:
        self.writer = writer
        self.pipelines = pipelines
        self.pricing = pricing
        # The per-user limit while PostgreSQL cannot count it (see local_limit).
        self.local_rate = LocalRateCount()

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
        now = self.writer.clock()
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
            event=self.writer.event(
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
                    "lease_owner": f"local:{self.writer.source_host}:{os.getpid()}",
                    "lease_expires_at": now + timedelta(seconds=pipeline.budget_seconds),
                }
            )

        admit = None
        if rate_limit is not None:
            limit = rate_limit

            def admit() -> None:
                self.local_rate.admit(new.user_id, limit)

        with request_context(request_id=request_id, correlation_id=correlation_id, pipeline=pipeline.name):
            result = await self.writer.write(
                write,
                lambda: self.writer.repository.create(write, rate_limit, budget),
                "create",
                journal_as=leased,
                admit=admit,
                **context,
            )
        if result is None:
            log.warning("request_tracking_degraded", synthetic_request_id=str(request_id), **context)
            self.writer.metrics.requests_created.labels(pipeline=pipeline.name).inc()
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
        self.writer.metrics.requests_created.labels(pipeline=pipeline.name).inc()
        log.info("request_created", **context)
        return CreatedRequest(result.id, result.correlation_id, result.status, result.created_at, True)
