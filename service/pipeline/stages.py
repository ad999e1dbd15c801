"""What each stage does. Each body takes the run state and returns the stage output.

Bodies call dependencies only through `ExternalCalls`, so every call is guarded by a
breaker, traced and measured. They raise `BackendError` subclasses: retryable ones
are retried by the runner, the others fail the stage at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypedDict, cast

import structlog

from service.backends.base import (
    BackendError,
    GenerationRequest,
    InvalidBackendRequest,
    OperationState,
    QuotaExceeded,
    TransientBackendError,
)
from service.backends.factory import Backends
from service.db.admission import outside_gate
from service.pipeline.billing import bill_operation
from service.pipeline.breaker import CircuitOpen
from service.pipeline.external_calls import ExternalCalls
from service.pipeline.lesson import LessonBodies, ScriptOutput
from service.pipeline.payload import final_payload
from service.pipeline.run_state import RunState
from service.request_states import RequestStatus, Severity, timeout_message
from service.settings import Settings
from service.tracking.queries import RequestQueries
from service.tracking.tracker import RequestTracker
from service.video_request import problems
from service.webhooks.delivery import Notifications
from telemetry.metrics import get_metrics

log = structlog.get_logger("reeltrace.stages")


class ValidationOutput(TypedDict):
    checked: list[str]


class GenerationOutput(TypedDict):
    operation_name: str
    videos: list[str]
    polls: int


class ProcessingOutput(TypedDict):
    objects: list[str]
    video_count: int
    video_urls: list[str]


class NotificationOutput(TypedDict, total=False):
    """The callback delivery's state (`sent` alone when no callback_url was given)."""

    sent: bool
    delivery_id: str
    outcome: str
    attempts: int
    status_code: int | None
    next_attempt_at: str | None


class GenerationFailed(BackendError):
    """The generation operation finished with an error."""

    error = "generation_failed"


class UncertainStart(BackendError):
    """A crashed run may have started a generation it never recorded, and the policy is `fail`."""

    error = "uncertain_start"


class GenerationFiltered(BackendError):
    """The safety filters removed every video: retrying the same prompt cannot help."""

    error = "generation_filtered"
    retryable = False


class StageTimedOut(TransientBackendError):
    """A stage attempt ran past its definition's timeout: worth another attempt."""

    error = "stage_timeout"


class GenerationTimedOut(BackendError):
    """Polling went past the generation timeout."""

    error = "generation_timeout"
    retryable = False


class StageBodies:
    def __init__(
        self,
        settings: Settings,
        backends: Backends,
        calls: ExternalCalls,
        tracker: RequestTracker,
        queries: RequestQueries,
        notifications: Notifications,
    ) -> None:
        self.settings = settings
        self.backends = backends
        self.calls = calls
        self.tracker = tracker
        self.queries = queries
        self.notifications = notifications
        self.lesson = LessonBodies(backends, calls, tracker)

    # --- validation ----------------------------------------------------------------

    async def validation(self, state: RunState, attempt: int) -> ValidationOutput:
        """Check the stored request against the API's rules (a row may not have come through it)."""
        item = state.item
        found = problems(state.request)
        if found:
            raise InvalidBackendRequest("validation failed: " + "; ".join(found), code="invalid_request")
        await self.tracker.log_event(
            item.id, "validation_passed", "request parameters are valid", stage="validation"
        )
        return {"checked": ["prompt", "duration_seconds", "aspect_ratio", "resolution", "pipeline"]}

    # --- generation ----------------------------------------------------------------------

    def _generation_prompt(self, state: RunState) -> str:
        script = state.output(ScriptOutput).get("script")
        return f"{state.request.prompt}\n\n{script}" if script else state.request.prompt

    async def _submission_key(self, state: RunState, attempt: int) -> str:
        """Reuse the key of a start that may have created an operation nobody recorded.

        In this run, that is a start that failed without a clear refusal (the operation
        may exist). Before it, only a resumed run can find one (a crashed run's), so a
        run that claimed its request pending skips the two reads.
        """
        if state.unsettled_key is not None:
            return state.unsettled_key
        resumed = state.item.status != RequestStatus.PENDING
        if resumed and state.tracked and state.operation_name is None:
            last = await self.queries.latest_event(state.item.id, "generation_submitting", "video_generation")
            recorded = await self.queries.latest_event(state.item.id, "operation_started", "video_generation")
            if last is not None and (recorded is None or recorded.id < last.id):
                return await self._uncertain_start(state, str(last.data["idempotency_key"]))
        return f"{state.item.id}:{attempt}"

    async def _uncertain_start(self, state: RunState, key: str) -> str:
        """A dead run recorded its intent to start but no operation: follow REELTRACE_UNCERTAIN_START."""
        policy = self.settings.uncertain_start
        action = "retried" if policy == "retry" else "failed"
        get_metrics().uncertain_starts.labels(action=action).inc()
        log.warning("generation_start_uncertain", idempotency_key=key, policy=policy)
        await self.tracker.log_event(
            state.item.id, "generation_start_uncertain",
            f"a previous run may have started a generation it never recorded; policy {policy}",
            severity=Severity.WARNING, stage="video_generation", data={"idempotency_key": key, "action": action},
        )  # fmt: skip
        if policy == "fail":
            raise UncertainStart(
                "a previous run may already have started this generation and died before recording it;"
                " not started again (REELTRACE_UNCERTAIN_START=fail)",
                code="uncertain_start",
            )
        return key

    async def _start_generation(self, state: RunState, attempt: int) -> str:
        item = state.item
        gen = self.backends.generation
        prefix = state.gcs_prefix or self.backends.storage.prefix_for(item.id)
        key = await self._submission_key(state, attempt)
        request = GenerationRequest(
            request_id=item.id,
            correlation_id=item.correlation_id,
            video=state.request,
            prompt=self._generation_prompt(state),
            output_prefix=prefix,
            idempotency_key=key,
        )
        # Write-ahead: if this process dies between start and record_operation, the
        # next run finds this key and the backend can deduplicate the start.
        await self.tracker.log_event(
            item.id, "generation_submitting", "starting the generation operation",
            stage="video_generation", data={"idempotency_key": key, "model": gen.model},
        )  # fmt: skip
        state.unsettled_key = key
        try:
            name = await self.calls.call(
                item.id, "generation", "start", lambda: gen.start(request),
                attributes=self._gen_ai_attributes(), span_name=f"generate_content {gen.model}",
            )  # fmt: skip
        except (QuotaExceeded, InvalidBackendRequest, CircuitOpen):
            state.unsettled_key = None  # refused outright: no operation was created
            raise
        state.unsettled_key = None
        await self.tracker.record_operation(item.id, name, prefix)
        state.operation_name, state.gcs_prefix = name, prefix
        return name

    def _gen_ai_attributes(self) -> dict[str, Any]:
        gen = self.backends.generation
        return {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": gen.provider,
            "gen_ai.request.model": gen.model,
        }

    def _deadline(self, state: RunState) -> float:
        """Monotonic deadline of the generation, counted from the stage's first start."""
        started = state.stages["video_generation"].started_at or datetime.now(UTC)
        elapsed = (datetime.now(UTC) - started).total_seconds()
        return time.monotonic() + self.settings.generation_timeout_seconds - max(elapsed, 0.0)

    async def video_generation(self, state: RunState, attempt: int) -> GenerationOutput:
        gen = self.backends.generation
        name = state.operation_name or await self._start_generation(state, attempt)
        deadline = self._deadline(state)
        interval = self.settings.poll_interval_seconds
        polls = 0
        while True:
            try:
                status = await self.calls.call(
                    state.item.id, "generation", "poll", lambda: gen.poll(name),
                    attributes={**self._gen_ai_attributes(), "operation_name": name},
                    span_name=f"poll {gen.model}",
                )  # fmt: skip
            except CircuitOpen:
                raise
            except BackendError as exc:
                if not exc.retryable:
                    raise
                # A failed poll says nothing about the operation: keep polling it.
                log.warning("generation_poll_failed", operation_name=name, error=exc.detail)
                status = None
            polls += 1
            if status is not None and status.state != OperationState.RUNNING:
                await bill_operation(self.tracker, self.queries, gen.model, state, status, attempt, name)
            if status is not None and status.state == OperationState.SUCCEEDED:
                return {"operation_name": name, "videos": [v.uri for v in status.videos], "polls": polls}
            if status is not None and status.state == OperationState.FAILED:
                state.operation_name = None  # a retry starts a fresh operation
                raise GenerationFailed(
                    status.error_message or "generation failed",
                    code=status.error_code,
                    retryable=status.retryable,
                )
            if status is not None and status.state == OperationState.FILTERED:
                reasons = "; ".join(status.filtered_reasons) or "no reason given"
                raise GenerationFiltered(
                    f"generation blocked by safety filters ({status.filtered_count} filtered): {reasons}",
                    code="rai_filtered",
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GenerationTimedOut(
                    timeout_message(self.settings.generation_timeout_seconds), code="timeout"
                )
            async with outside_gate():
                await asyncio.sleep(min(interval, remaining))

    # --- processing ------------------------------------------------------------------------

    async def video_processing(self, state: RunState, attempt: int) -> ProcessingOutput:
        item = state.item
        storage = self.backends.storage
        prefix = state.gcs_prefix or storage.prefix_for(item.id)
        expected = set(state.output(GenerationOutput).get("videos", []))
        objects = await self.calls.call(item.id, "storage", "list", lambda: storage.list(prefix))
        videos = [o for o in objects if o.uri.endswith(".mp4") or (o.content_type or "").startswith("video/")]
        missing = expected - {o.uri for o in videos}
        if missing or not videos:
            # Object listings can lag a finished operation for a moment: retry.
            raise TransientBackendError(f"{len(missing) or 'no'} generated videos missing under {prefix}")
        metadata = {
            "request_id": str(item.id),
            "correlation_id": item.correlation_id,
            "operation_name": state.operation_name,
            "prompt": state.request.prompt,
            "videos": [{"uri": v.uri, "size": v.size} for v in videos],
            "processed_at": datetime.now(UTC).isoformat(),
        }
        body = json.dumps(metadata, indent=2).encode()
        await self.calls.call(
            item.id, "storage", "put", lambda: storage.put(f"{prefix}metadata.json", body, "application/json")
        )
        urls = [
            await self.calls.call(item.id, "storage", "url", partial(storage.url_for, video.uri))
            for video in videos
        ]
        state.video_urls = urls
        return {"objects": [v.uri for v in videos], "video_count": len(urls), "video_urls": urls}

    # --- notification -----------------------------------------------------------------------

    async def notification(self, state: RunState, attempt: int) -> NotificationOutput:
        """Enqueue the callback as a durable delivery and make its first attempt.

        Its later attempts, if any, are the delivery sweep's: this returns the
        delivery's state, which the notification stage row shows.
        """
        url = state.request.callback_url
        if not url:
            return {"sent": False}
        payload = await final_payload(self.queries, state)
        event = f"request.{payload.get('status', 'unknown')}"
        # The delivery calls the receiver: not for a run that has lost its claim.
        await self.tracker.hold_claim(state.item.id)
        return cast(
            NotificationOutput, await self.notifications.notify(state.item.id, str(url), event, payload)
        )
