"""The request tracker: every part of reeltrace records a request's life through it.

It is composed of one collaborator per concern, each in its own module:

- `writer` (`TrackingWriter`): builds events, applies a write or journals it, replays the journal;
- `runs` (`RunWrites`): folds a run's writes into steps and confirms its claim before a call out;
- `creation` (`RequestCreation`): creates requests, with their estimate and limits;
- `statuses` (`StatusTracking`): status changes and the generation operation;
- `stages` (`StageTracking`): stage rows and their attempts;
- `costs` (`CostTracking`): billed attempts.

Callers use the tracker's methods, each of which is its collaborator's own method.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from service.cost.prices import load_prices
from service.cost.pricing import Pricing
from service.request_states import RequestStatus, Severity
from service.tracking.cost_tracking import CostTracking
from service.tracking.creation import RequestCreation
from service.tracking.fence import fence_of
from service.tracking.journal import Journal, ReplayReport
from service.tracking.pipelines import TrackedPipelines
from service.tracking.repository import TrackingRepository
from service.tracking.run_writes import RunWrites
from service.tracking.stage_tracking import StageTracking
from service.tracking.status_tracking import StatusTracking
from service.tracking.write_values import LogEvent
from service.tracking.writer import TrackingWriter, utcnow
from service.video_request import ASPECT_RATIOS
from telemetry.metrics import Metrics

# The model of the settings' default (REELTRACE_VEO_MODEL), for trackers built without
# pricing (tests, tools); the runtime passes the configured one.
DEFAULT_VEO_MODEL = "veo-3.1-fast-generate-001"


class RequestTracker:
    """Records requests, stages and events in PostgreSQL, or journals them."""

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
        self.writer = TrackingWriter(
            repository, journal, source_service=source_service, metrics=metrics, clock=clock
        )
        self.pipelines = pipelines
        self.pricing = pricing or Pricing(load_prices(), DEFAULT_VEO_MODEL)
        self.writer.metrics.declare_pipelines(
            pipelines, [status.value for status in RequestStatus if status.is_terminal], ASPECT_RATIOS
        )
        self.writer.metrics.declare_costs(pipelines, self.pricing.model)
        self.runs = RunWrites(self.writer, lease_seconds=lease_seconds)
        self.creation = RequestCreation(self.writer, pipelines, self.pricing)
        self.statuses = StatusTracking(self.runs)
        self.stages = StageTracking(self.runs)
        self.costs = CostTracking(self.runs)

        self.create_request = self.creation.create_request
        self.transition = self.statuses.transition
        self.start_request = self.statuses.start_request
        self.complete_request = self.statuses.complete_request
        self.fail_request = self.statuses.fail_request
        self.timeout_request = self.statuses.timeout_request
        self.record_operation = self.statuses.record_operation
        self.start_stage = self.stages.start_stage
        self.complete_stage = self.stages.complete_stage
        self.fail_stage = self.stages.fail_stage
        self.retry_stage = self.stages.retry_stage
        self.skip_stage = self.stages.skip_stage
        self.track_stage = self.stages.track_stage
        self.record_cost = self.costs.record_cost
        self.folding = self.runs.folding
        self.flush = self.runs.flush
        self.release_with_last_write = self.runs.release_with_last_write
        self.hold_claim = self.runs.hold_claim

    # What the writer holds, as the tracker's own: a test may swap the clock or the
    # metrics, and every collaborator reads them from the writer when it writes.

    @property
    def repository(self) -> TrackingRepository:
        return self.writer.repository

    @property
    def journal(self) -> Journal:
        return self.writer.journal

    @property
    def source_service(self) -> str:
        return self.writer.source_service

    @property
    def source_host(self) -> str:
        return self.writer.source_host

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.writer.clock

    @clock.setter
    def clock(self, clock: Callable[[], datetime]) -> None:
        self.writer.clock = clock

    @property
    def metrics(self) -> Metrics:
        return self.writer.metrics

    @metrics.setter
    def metrics(self, metrics: Metrics) -> None:
        self.writer.metrics = metrics

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
        """Record an event on the request's timeline (folded into a run's next write)."""
        write = LogEvent(
            fence=fence_of(request_id),
            event=self.writer.event(
                request_id,
                event_type,
                self.writer.clock(),
                severity=severity,
                stage=stage,
                message=message,
                data=data,
            ),
        )
        await self.runs.track(
            write, "event", lambda _: None, request_id=str(request_id), event_type=event_type
        )

    async def backfill(self) -> ReplayReport:
        """Replay the journal into PostgreSQL, in order, idempotently."""
        return await self.writer.backfill(self.statuses.record_transition)
