"""Calls to external dependencies: breaker, CLIENT span, metrics and error mapping.

Every call a stage makes to a dependency goes through `ExternalCalls.call`, so every
one of them is guarded by that dependency's breaker, traced as a CLIENT span, timed
in `reeltrace_external_call_duration_seconds` and counted by outcome.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from service.backends.base import BackendError, InvalidBackendRequest, TransientBackendError
from service.db.admission import outside_gate
from service.pipeline.breaker import BreakerBoard, CircuitOpen, StateChange
from service.request_states import Severity
from service.tracking.tracker import RequestTracker
from telemetry.metrics import Metrics, current_exemplar, get_metrics

T = TypeVar("T")

log = structlog.get_logger("reeltrace.calls")
tracer = trace.get_tracer("reeltrace.pipeline")


def as_backend_error(exc: BaseException) -> BackendError:
    """Classify an arbitrary failure of a dependency call."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        message = f"HTTP {code} from {exc.request.url.host}"
        if code == 429 or code >= 500:
            return TransientBackendError(message, code=code)
        return InvalidBackendRequest(message, code=code)
    if isinstance(exc, httpx.TransportError | TimeoutError | ConnectionError | OSError):
        return TransientBackendError(f"{type(exc).__name__}: {exc}", code=type(exc).__name__)
    return BackendError(f"{type(exc).__name__}: {exc}", code=type(exc).__name__)


class ExternalCalls:
    def __init__(
        self, breakers: BreakerBoard, tracker: RequestTracker, metrics: Metrics | None = None
    ) -> None:
        self.breakers = breakers
        self.tracker = tracker
        self.metrics = metrics or get_metrics()

    async def _announce(self, request_id: uuid.UUID, change: StateChange | None) -> None:
        if change is None:
            return
        severity = Severity.ERROR if change.new.value == "open" else Severity.WARNING
        log.warning(
            "circuit_breaker_state_changed",
            dependency=change.dependency,
            old_state=change.old.value,
            new_state=change.new.value,
            consecutive_failures=change.failure_count,
        )
        await self.tracker.log_event(
            request_id,
            f"circuit_breaker_{change.new.value}",
            f"circuit breaker for {change.dependency}: {change.old.value} -> {change.new.value}",
            severity=severity,
            data={"dependency": change.dependency, "consecutive_failures": change.failure_count},
        )

    async def call(
        self,
        request_id: uuid.UUID,
        dependency: str,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        attributes: Mapping[str, Any] | None = None,
        span_name: str | None = None,
    ) -> T:
        # A run that lost its claim to another makes no further call (raises ClaimLost).
        await self.tracker.hold_claim(request_id)
        breaker = self.breakers[dependency]
        try:
            await self._announce(request_id, await breaker.before_call())
        except CircuitOpen:
            self.metrics.external_calls.labels(dependency=dependency, outcome="rejected").inc()
            raise
        started = time.perf_counter()
        with tracer.start_as_current_span(
            span_name or f"{dependency}.{operation}",
            kind=SpanKind.CLIENT,
            attributes={"dependency": dependency, "operation": operation, **(attributes or {})},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                async with outside_gate():  # the run needs no database while it waits here
                    result = await fn()
            except asyncio.CancelledError:
                # Cut off (the stage's timeout, a lost lease, shutdown): no verdict on the
                # dependency. A half-open trial must give its slot back, or the breaker
                # refuses every later call, for good.
                await breaker.release_trial()
                raise
            except Exception as exc:
                error = as_backend_error(exc)
                self._observe(dependency, started, "error")
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, error.detail))
                span.set_attribute("error.type", type(error).__name__)
                if isinstance(error, InvalidBackendRequest):
                    # The dependency answered, and rightly refused: not a health signal.
                    await breaker.release_trial()
                else:
                    await self._announce(request_id, await breaker.record_failure())
                if error is exc:
                    raise
                raise error from exc
            self._observe(dependency, started, "success")
            await self._announce(request_id, await breaker.record_success())
            return result

    def _observe(self, dependency: str, started: float, outcome: str) -> None:
        self.metrics.external_calls.labels(dependency=dependency, outcome=outcome).inc()
        self.metrics.external_call_duration.labels(dependency=dependency).observe(
            time.perf_counter() - started, current_exemplar()
        )
