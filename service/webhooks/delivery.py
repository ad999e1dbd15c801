"""Delivering callbacks: enqueue one delivery per request outcome, attempt it, schedule the next.

The run that ends a request enqueues its callback and makes the first attempt at
once; later attempts are the sweep's (`service.webhooks.sweep`), in any worker, when
they fall due. A failed attempt is retried after an exponential backoff with jitter
(`REELTRACE_WEBHOOK_RETRY_BASE_SECONDS` doubling up to `_MAX_SECONDS`) until the
retry window (`REELTRACE_WEBHOOK_RETRY_WINDOW_SECONDS` from the enqueue) is over;
then the delivery is `failed`. Any answer but a 2xx is a failure, as with the
webhook systems receivers know. The request's own status is never changed here.

No circuit breaker guards callbacks: each delivery backs off on its own, and the sweep
holds at most a few attempts per receiver host in flight, so one receiver's failures
only ever delay its own deliveries.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.backends.webhook import WebhookNotifier
from service.db.admission import outside_gate
from service.errors import DatabaseUnavailable, RequestNotFound
from service.sanitize import sanitize_error
from service.settings import Settings
from service.tracking.tracker import RequestTracker
from service.webhooks.repository import AttemptRecord, Delivery, DeliveryRepository
from telemetry.correlation import request_context
from telemetry.metrics import Metrics, current_exemplar, get_metrics

log = structlog.get_logger("reeltrace.webhooks")
tracer = trace.get_tracer("reeltrace.webhooks")
_propagator = TraceContextTextMapPropagator()

NOTIFICATION = "notification"
# How long past the attempt's own timeout a claim outlives it (then another sweep may
# take the delivery, as if this process had died mid-attempt).
CLAIM_MARGIN_SECONDS = 30.0
# reeltrace_webhook_attempts_total's outcome label, by the delivery's outcome after it.
ATTEMPT_OUTCOMES = {"delivered": "delivered", "pending": "retrying", "failed": "gave_up"}


def delivery_id_for(request_id: uuid.UUID, event: str) -> uuid.UUID:
    """The delivery id of a request's callback: the same in every run that sends it."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"reeltrace:{request_id}:{event}")


def backoff_seconds(attempt: int, base: float, maximum: float) -> float:
    """The wait after failed attempt `attempt` (1-based): base doubling per attempt, capped."""
    return float(min(base * 2 ** min(attempt - 1, 62), maximum))


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt found: the answer code (if any), its latency, and the error."""

    status_code: int | None
    latency_ms: float
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None


def stage_output(delivery: Delivery) -> dict[str, Any]:
    """The notification stage's output: the delivery's state."""
    return {
        "sent": delivery.outcome == "delivered",
        "delivery_id": str(delivery.id),
        "outcome": delivery.outcome,
        "attempts": delivery.attempts,
        "status_code": delivery.last_status_code,
        "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
    }


class Notifications:
    """Enqueues and attempts callback deliveries (the runner's first attempt, the sweep's later ones)."""

    def __init__(
        self,
        settings: Settings,
        repository: DeliveryRepository,
        notifier: WebhookNotifier,
        tracker: RequestTracker,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.notifier = notifier
        self.tracker = tracker
        self.metrics = metrics or get_metrics()
        self.claim_seconds = settings.webhook_timeout_seconds + CLAIM_MARGIN_SECONDS

    # --- the run's side ---------------------------------------------------------------

    async def notify(
        self, request_id: uuid.UUID, url: str, event: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Enqueue the request's callback and attempt it now; returns the stage output.

        When the request is not (yet) in PostgreSQL (its writes wait in the journal),
        no delivery row can be kept: one attempt is made and its result journaled on
        the stage, as every other tracking write of such a run.
        """
        delivery_id = delivery_id_for(request_id, event)
        if self.tracker.journal.has_pending():
            return await self._notify_untracked(request_id, delivery_id, url, event, payload)
        try:
            delivery = await self.repository.enqueue(
                delivery_id, request_id, event, url, host_of(url), payload,
                self.settings.webhook_retry_window_seconds,
            )  # fmt: skip
        except (DatabaseUnavailable, RequestNotFound):
            return await self._notify_untracked(request_id, delivery_id, url, event, payload)
        claimed = await self.repository.claim_one(delivery.id, self.claim_seconds)
        if claimed is None:  # delivered already, or in flight in another process
            return stage_output(delivery)
        recorded = await self.attempt(claimed)
        return stage_output(recorded or claimed)

    async def _notify_untracked(
        self, request_id: uuid.UUID, delivery_id: uuid.UUID, url: str, event: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        outcome = await self._send(request_id, delivery_id, url, event, payload)
        self._count("delivered" if outcome.delivered else "gave_up")
        output = {
            "sent": outcome.delivered,
            "delivery_id": str(delivery_id),
            "outcome": "delivered" if outcome.delivered else "failed",
            "attempts": 1,
            "status_code": outcome.status_code,
            "next_attempt_at": None,
        }
        if outcome.delivered:
            await self.tracker.complete_stage(request_id, NOTIFICATION, output=output)
        else:
            await self.tracker.fail_stage(
                request_id, NOTIFICATION, outcome.error or "callback failed", attempt=1,
                error_details={"delivery_id": str(delivery_id), "status_code": outcome.status_code},
            )  # fmt: skip
        return output

    # --- one attempt ------------------------------------------------------------------

    async def attempt(self, delivery: Delivery) -> Delivery | None:
        """Send a claimed delivery once and record the result (None: the claim was lost)."""
        ctx = _propagator.extract({"traceparent": delivery.traceparent}) if delivery.traceparent else None
        token = otel_context.attach(ctx) if ctx is not None else None
        try:
            with request_context(request_id=delivery.request_id, correlation_id=delivery.correlation_id):
                return await self._attempt(delivery)
        finally:
            if token is not None:
                otel_context.detach(token)

    async def _attempt(self, delivery: Delivery) -> Delivery | None:
        outcome = await self._send(
            delivery.request_id, delivery.id, delivery.url, delivery.event, delivery.payload
        )
        record = self._record_for(delivery, outcome, datetime.now(UTC))
        recorded = await self.repository.record(delivery, record)
        self._count(ATTEMPT_OUTCOMES[record.outcome])
        emit = {"delivered": log.info, "pending": log.warning, "failed": log.error}[record.outcome]
        emit(
            "webhook_attempt",
            delivery_id=str(delivery.id),
            attempt=delivery.attempts + 1,
            host=delivery.host,
            status_code=outcome.status_code,
            latency_ms=round(outcome.latency_ms, 1),
            outcome=record.outcome,
            next_attempt_at=record.next_attempt_at.isoformat() if record.next_attempt_at else None,
            error=outcome.error,
            fenced=recorded is None,
        )
        return recorded

    def _count(self, outcome: str) -> None:
        self.metrics.webhook_attempts.labels(outcome=outcome).inc()

    def _record_for(self, delivery: Delivery, outcome: Outcome, now: datetime) -> AttemptRecord:
        attempt = delivery.attempts + 1
        data: dict[str, Any] = {
            "delivery_id": str(delivery.id),
            "attempt": attempt,
            "event": delivery.event,
            "status_code": outcome.status_code,
            "latency_ms": round(outcome.latency_ms, 1),
        }
        if outcome.delivered:
            result, stage, next_at = "delivered", "completed", None
            event_type, severity = "notification_sent", "info"
            message = f"callback answered {outcome.status_code}"
        else:
            delay = backoff_seconds(
                attempt, self.settings.webhook_retry_base_seconds, self.settings.webhook_retry_max_seconds
            )
            # Jitter spreads the retries of many deliveries that failed together.
            next_at = now + timedelta(seconds=delay * random.uniform(1.0, 1.1))  # noqa: S311 (not crypto)
            if next_at > delivery.deliver_until:
                result, stage, next_at = "failed", "failed", None
                event_type, severity = "notification_gave_up", "error"
                message = f"callback attempt {attempt} failed ({outcome.error}); retry window over, gave up"
            else:
                result, stage = "pending", "in_progress"
                event_type, severity = "notification_attempt_failed", "warning"
                message = (
                    f"callback attempt {attempt} failed ({outcome.error}); next at {next_at.isoformat()}"
                )
            data["error"] = outcome.error
        data["outcome"] = result
        data["next_attempt_at"] = next_at.isoformat() if next_at else None
        output = {
            "sent": result == "delivered",
            "delivery_id": str(delivery.id),
            "outcome": result,
            "attempts": attempt,
            "status_code": outcome.status_code,
            "next_attempt_at": data["next_attempt_at"],
        }
        return AttemptRecord(
            outcome=result,
            at=now,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            next_attempt_at=next_at,
            stage_status=stage,
            output=output,
            event_type=event_type,
            severity=severity,
            message=sanitize_error(message),
            data=data,
        )

    async def _send(
        self, request_id: uuid.UUID, delivery_id: uuid.UUID, url: str, event: str, payload: dict[str, Any]
    ) -> Outcome:
        """POST once; never raises for the receiver's failures (they are the outcome)."""
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        with tracer.start_as_current_span(
            "notification.webhook",
            kind=SpanKind.CLIENT,
            attributes={
                "dependency": NOTIFICATION,
                "operation": "webhook",
                "request.id": str(request_id),
                "webhook.delivery_id": str(delivery_id),
            },
        ) as span:
            limit = self.settings.webhook_timeout_seconds
            try:
                # httpx's timeout bounds each read, not the whole answer: a receiver that
                # trickles bytes would outlast the claim (and be attempted twice at once).
                async with outside_gate(), asyncio.timeout(limit):  # no database needed meanwhile
                    code = await self.notifier.send(url, event, payload, delivery_id=str(delivery_id))
            except httpx.HTTPStatusError as exc:
                code = exc.response.status_code
                error = f"HTTP {code}"
            except TimeoutError:
                error = f"no answer within {limit:g} s"
            except (httpx.HTTPError, OSError) as exc:
                error = sanitize_error(f"{type(exc).__name__}: {exc}".rstrip(": "))
            elapsed = time.perf_counter() - started
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error))
            if code is not None:
                span.set_attribute("http.response.status_code", code)
        self.metrics.external_calls.labels(
            dependency=NOTIFICATION, outcome="success" if error is None else "error"
        ).inc()
        self.metrics.external_call_duration.labels(dependency=NOTIFICATION).observe(
            elapsed, current_exemplar()
        )
        return Outcome(code, elapsed * 1000, error)


async def redeliver(
    repository: DeliveryRepository, settings: Settings, delivery_id: uuid.UUID, by: str
) -> Delivery:
    """Send a delivery again (whatever its outcome), with a fresh retry window, at the next sweep."""
    delivery = await repository.redeliver(delivery_id, settings.webhook_retry_window_seconds, by)
    log.info(
        "webhook_redelivery_requested",
        delivery_id=str(delivery_id),
        request_id=str(delivery.request_id),
        by=by,
    )
    return delivery
