"""The pipeline runner: takes one request from where it stands to a terminal status.

Stages run in order, each attempt inside `tracker.track_stage` and its own span (a
child of the trace stored on the request, whichever process runs it). Retryable
failures are retried with exponential backoff and jitter (tenacity), each retry
recorded; the first non-retryable failure (or the last attempt) fails the request
with its `error_stage`, and the stages that can no longer run are skipped. The
notification stage runs last, after the terminal status, so the callback receives
the final request.

A run resumes: stages already completed are not run again, a stage's attempt
numbering continues, and a generation whose operation is stored is polled, not
started again. A run that died after the terminal status resumes at the notification.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from service.backends.base import BackendError
from service.db.admission import RunGate
from service.errors import ClaimLost, DatabaseUnavailable, InvalidStatusTransition, RequestNotFound
from service.pipeline.definitions import PIPELINES, Pipeline, StageDefinition, get_pipeline
from service.pipeline.resume import cut_off, resume_link
from service.pipeline.run_state import RunState, WorkItem
from service.pipeline.stages import GenerationTimedOut, ProcessingOutput, StageBodies, StageTimedOut
from service.request_states import RequestStatus, StageStatus
from service.settings import Settings
from service.tracking.queries import RequestQueries
from service.tracking.tracker import RequestTracker
from telemetry.correlation import request_context
from telemetry.metrics import Metrics, current_exemplar, get_metrics

log = structlog.get_logger("reeltrace.runner")
tracer = trace.get_tracer("reeltrace.pipeline")
_propagator = TraceContextTextMapPropagator()

NOTIFICATION = "notification"
VIDEO_GENERATION = "video_generation"

T = TypeVar("T")


class StageFailed(Exception):
    """A stage failed for good; carries the cause and whether it was a timeout."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.stage = stage
        self.cause = cause
        self.timed_out = isinstance(cause, GenerationTimedOut)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, BackendError) and exc.retryable


class PipelineRunner:
    def __init__(
        self,
        settings: Settings,
        tracker: RequestTracker,
        queries: RequestQueries,
        bodies: StageBodies,
        metrics: Metrics | None = None,
        gate: RunGate | None = None,
    ) -> None:
        self.settings = settings
        self.tracker = tracker
        self.queries = queries
        self.bodies = bodies
        self.metrics = metrics or get_metrics()
        # One permit per kept pool connection: overflow connections are closed when
        # returned, and reopening them per statement costs more than waiting.
        self.gate = gate or RunGate(settings.db_pool_size)
        for pipeline in PIPELINES.values():
            self.metrics.declare_stages(pipeline.name, pipeline.stage_names)

    # --- tracing context -------------------------------------------------------------

    @asynccontextmanager
    async def _request_trace(self, item: WorkItem) -> AsyncIterator[None]:
        """Make the request's stored trace the current context, so spans join it."""
        ctx = _propagator.extract({"traceparent": item.traceparent}) if item.traceparent else None
        token = otel_context.attach(ctx) if ctx is not None else None
        try:
            with request_context(
                request_id=item.id, correlation_id=item.correlation_id, pipeline=item.pipeline
            ):
                yield
        finally:
            if token is not None:
                otel_context.detach(token)

    def _span_attributes(self, item: WorkItem) -> dict[str, Any]:
        return {"correlation_id": item.correlation_id, "request.id": str(item.id), "pipeline": item.pipeline}

    # --- a run ------------------------------------------------------------------------

    async def _load(self, item: WorkItem, pipeline: Pipeline) -> RunState:
        try:
            return RunState.from_read(item, await self.queries.get_request(item.id), pipeline.outputs)
        except (DatabaseUnavailable, RequestNotFound):
            # Degraded mode: the request lives only in the journal for now.
            max_retries = {s.name: s.max_retries for s in pipeline.stage_specs(self.settings.max_retries)}
            state = RunState.fresh(item, pipeline.stage_names, max_retries, pipeline.outputs)
            state.tracked = False
            return state

    async def run(self, item: WorkItem) -> RequestStatus | None:
        """Run the request to a terminal status; returns it (None if the run was pre-empted)."""
        pipeline = get_pipeline(item.pipeline)
        async with self._request_trace(item), self.gate.admitted():
            try:
                # The run's writes fold into as few statements as keep them durable in
                # time (service.tracking.folding); leaving the block sends the rest.
                async with self.tracker.folding(item.id):
                    return await self._run(item, pipeline)
            except InvalidStatusTransition:
                # Someone else (the watchdog, an operator) ended the request meanwhile.
                log.warning("run_preempted", reason="request status changed under the run")
                return None
            except ClaimLost:
                # Another run owns the request now: stop here, writing and calling nothing.
                log.warning("run_preempted", reason="claim taken over by another run")
                return None

    async def _run(self, item: WorkItem, pipeline: Pipeline) -> RequestStatus:
        state = await self._load(item, pipeline)
        if item.status.is_terminal:
            # The run that ended the request stopped before its notification stage.
            state.final_status = item.status
            if not state.stages[NOTIFICATION].done:
                await self.tracker.log_event(
                    item.id,
                    "request_resumed",
                    f"notification resumed by a worker (claim {item.claims})",
                    data={"claims": item.claims},
                )
                await self._notify(state, pipeline.stage(NOTIFICATION))
            return item.status
        if item.status == RequestStatus.PENDING:
            await self.tracker.start_request(item.id)
        else:
            await self.tracker.log_event(
                item.id,
                "request_resumed",
                f"resumed by a worker (claim {item.claims})",
                data={"claims": item.claims},
            )
        failure: StageFailed | None = None
        for stage in pipeline.stages:
            # A request runs the stages it was created with: one created before a stage
            # was added to its pipeline has no row for it, and goes on without it.
            if stage.name not in state.stages:
                continue
            if stage.name == NOTIFICATION or state.stages[stage.name].done:
                continue
            if failure is not None:
                await self.tracker.skip_stage(item.id, stage.name, f"skipped: {failure.stage} failed")
                continue
            try:
                await self._run_stage(state, stage)
            except StageFailed as exc:
                failure = exc
        final = await self._finish(state, failure)
        if not state.stages[NOTIFICATION].done:
            await self._notify(state, pipeline.stage(NOTIFICATION))
        # The run is done: its last write also gives up its lease.
        self.tracker.release_with_last_write(item.id)
        return final

    async def _finish(self, state: RunState, failure: StageFailed | None) -> RequestStatus:
        item = state.item
        if failure is None:
            urls = state.video_urls or list(state.output(ProcessingOutput).get("video_urls", []))
            await self.tracker.complete_request(item.id, urls)
            state.final_status = RequestStatus.COMPLETED
        elif failure.timed_out:
            await self.tracker.timeout_request(
                item.id, str(failure.cause), error_stage=failure.stage, error_details={"code": "timeout"}
            )
            state.final_status = RequestStatus.TIMEOUT
        else:
            cause = failure.cause
            details = {"exception_type": type(cause).__name__, "retryable": is_retryable(cause)}
            if isinstance(cause, BackendError) and cause.code is not None:
                details["code"] = cause.code
            await self.tracker.fail_request(
                item.id, str(cause) or type(cause).__name__, error_stage=failure.stage, error_details=details
            )
            state.final_status = RequestStatus.FAILED
        return state.final_status

    async def _notify(self, state: RunState, stage: StageDefinition[Any]) -> None:
        """Hand the callback to its delivery: the stage row then shows the delivery's state.

        The stage is not retried here: a delivery retries on its own schedule (in any
        worker's sweep) and never changes the request's outcome.
        """
        if not state.request.callback_url:
            await self.tracker.skip_stage(state.item.id, stage.name, "no callback_url was given")
            return
        await self.tracker.start_stage(state.item.id, stage.name, max(state.stages[stage.name].attempts, 1))
        # The callback's payload is read back from PostgreSQL: the ending must be there.
        await self.tracker.flush(state.item.id)
        try:
            await self.bodies.notification(state, 1)
        except (DatabaseUnavailable, ClaimLost):
            raise  # the run is interrupted: a resumed run enqueues the same delivery again
        except Exception:
            # Not the receiver's failure (that is the delivery's outcome): a bug, logged;
            # the request's outcome stands.
            log.exception("notification_failed", callback_host=_host(state.request.callback_url))

    # --- a stage ------------------------------------------------------------------------

    async def _run_stage(self, state: RunState, stage: StageDefinition[Any]) -> None:
        item = state.item
        row = state.stages[stage.name]
        prior = row.attempts
        if await cut_off(self.queries, state, stage.name):
            # The attempt a previous run left in progress runs again under its own number:
            # a takeover is a resume, not a retry (retry_count and the budget stay).
            prior -= 1
        # Attempts made before a crash count against the budget, but a resumed
        # stage always gets at least one attempt.
        budget = max(1, row.max_retries + 1 - prior)
        last_attempt = prior + budget
        links = await resume_link(self.queries, state, stage.name)
        # As on the stage row: the stage's clock (the generation deadline) starts at its
        # first attempt, whether the later attempts run here or in a resumed run.
        row.started_at = row.started_at or datetime.now(UTC)

        async def record_retry(retry_state: RetryCallState) -> None:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            delay = retry_state.next_action.sleep if retry_state.next_action else None
            self.metrics.stage_retries.labels(pipeline=item.pipeline, stage=stage.name).inc()
            await self.tracker.retry_stage(
                item.id, stage.name, prior + retry_state.attempt_number, str(exc), delay_seconds=delay
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(budget),
            wait=wait_exponential_jitter(
                initial=self.settings.retry_base_seconds,
                max=self.settings.retry_max_seconds,
                jitter=self.settings.retry_base_seconds,
            ),
            retry=retry_if_exception(is_retryable),
            before_sleep=record_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    number = prior + attempt.retry_state.attempt_number
                    output = await self._attempt(state, stage, number, last_attempt, links)
                    links = []
        except (DatabaseUnavailable, ClaimLost):
            raise  # the run is interrupted, not the stage failed: it resumes elsewhere
        except Exception as exc:
            raise StageFailed(stage.name, exc) from exc
        row.output = output
        row.status = StageStatus.COMPLETED
        row.attempts = number

    async def _attempt(
        self, state: RunState, stage: StageDefinition[Any], number: int, last_attempt: int, links: list[Link]
    ) -> dict[str, Any] | None:
        item = state.item

        def will_retry(exc: BaseException) -> bool:
            if isinstance(exc, DatabaseUnavailable | ClaimLost):
                # PostgreSQL went away under the attempt: the run stops here and resumes
                # later (another attempt follows), so the stage is not recorded as failed.
                return True
            return is_retryable(exc) and number < last_attempt

        in_flight = self.metrics.requests_in_flight.labels(pipeline=item.pipeline, stage=stage.name)
        in_flight.inc()
        started = time.perf_counter()
        # Stays None if the attempt is cancelled (shutdown, lost lease): it has no outcome.
        outcome: str | None = None
        with tracer.start_as_current_span(
            f"stage {stage.name}",
            kind=SpanKind.INTERNAL,
            attributes={**self._span_attributes(item), "stage.name": stage.name, "stage.attempt": number},
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            ctx = span.get_span_context()
            span_ids = (
                {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
                if ctx.is_valid
                else None
            )
            try:
                async with self.tracker.track_stage(
                    item.id, stage.name, attempt=number, will_retry=will_retry, span_ids=span_ids
                ) as handle:
                    handle.output = await self._bounded(stage, stage.body(self.bodies, state, number))
                outcome = "completed"
                return handle.output
            except Exception as exc:
                outcome = "retried" if is_retryable(exc) and number < last_attempt else "failed"
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
                raise
            finally:
                in_flight.dec()
                if outcome is not None:
                    self.metrics.stage_duration.labels(
                        pipeline=item.pipeline, stage=stage.name, status=outcome
                    ).observe(time.perf_counter() - started, current_exemplar())

    async def _bounded(self, stage: StageDefinition[Any], body: Awaitable[T]) -> T:
        """Run a stage body within its definition's timeout (a retryable failure past it).

        The generation stage is bounded by the generation timeout instead, which its
        polling enforces (and which ends the request as `timeout`).
        """
        if stage.name == VIDEO_GENERATION:
            return await body
        try:
            async with asyncio.timeout(stage.timeout_seconds):
                return await body
        except TimeoutError:
            raise StageTimedOut(
                f"{stage.name} attempt timed out after {stage.timeout_seconds:g} s", code="stage_timeout"
            ) from None


def _host(url: object) -> str | None:
    return urlsplit(str(url)).hostname if url else None
