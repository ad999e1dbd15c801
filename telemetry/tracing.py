"""OpenTelemetry tracing: provider set-up from the standard `OTEL_*` variables.

- `OTEL_SDK_DISABLED=true`: no SDK at all; the API's no-op tracer is used.
- `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): spans are
  batched and exported over OTLP/HTTP (the collector, then Jaeger).
- `OTEL_TRACES_EXPORTER=console`: spans are printed; `none`: nothing is exported.
- Otherwise spans are recorded but not exported, so trace IDs still reach the
  request rows, the logs and the metric exemplars.
`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)` and the
`OTEL_BSP_*` batch settings are read by the SDK itself (see `batch_processor` for
the two batch defaults changed here). Every span started inside `request_context`
carries the request's `correlation_id`, `request.id` and `pipeline` (see the span
processor). Database work is traced by `telemetry.database` (what a write did, a
read's summary), not by instrumenting the driver: that cost ~0.1 ms of CPU per
statement and put each statement's full text in the trace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetry.correlation import current_span_attributes

if TYPE_CHECKING:  # a type only: a worker never imports FastAPI otherwise (~0.4 s)
    from fastapi.telemetry import TelemetryConfig

_PROPAGATOR = TraceContextTextMapPropagator()
UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})

# Spans are encoded for export on a thread of the serving process, holding the GIL
# (~70 µs a span). A batch of the SDK's default 512 keeps requests waiting ~35 ms;
# 64 encode within about one GIL switch interval (5 ms). Measured with the API
# benchmark: p99 of a submission 37-54 ms instead of 74-108 ms, at about the same rate.
EXPORT_BATCH_SIZE = 64
EXPORT_DELAY_MS = 200

_provider: TracerProvider | None = None
# What the installed provider sends its spans to: "otlp", "console", "custom" (an
# exporter handed to configure_tracing), or None (recorded only, or no SDK).
_export: str | None = None


class RequestAttributesSpanProcessor(SpanProcessor):
    """Stamps the current request's identity on every span as it starts."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attributes = current_span_attributes()
        if attributes:
            span.set_attributes(dict(attributes))

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def trace_export() -> str | None:
    """Where this process's spans go: "otlp", "console", "custom", or None (nowhere)."""
    return _export


def reaches_jaeger() -> bool:
    """Whether spans leave this process for a trace backend (a Jaeger link can open them)."""
    return _export in ("otlp", "custom")


def _exporter_from_env() -> SpanExporter | None:
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    if (
        choice == "otlp"
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


def batch_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    """The batching processor for `exporter`; `OTEL_BSP_*` variables, when set, win."""
    return BatchSpanProcessor(
        exporter,
        max_export_batch_size=None if "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in os.environ else EXPORT_BATCH_SIZE,
        schedule_delay_millis=None if "OTEL_BSP_SCHEDULE_DELAY" in os.environ else EXPORT_DELAY_MS,
    )


def configure_tracing(
    default_service_name: str = "reeltrace", *, exporter: SpanExporter | None = None, batch: bool = True
) -> TracerProvider | None:
    """Install the process's tracer provider (once); returns it, or None if disabled.

    `exporter` overrides the environment's choice (tests pass an in-memory one,
    with `batch=False` so spans are there as soon as they end).
    """
    global _provider, _export
    if _env_true("OTEL_SDK_DISABLED"):
        return None
    if _provider is not None:
        return _provider
    resource = Resource.create(
        {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": default_service_name}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(RequestAttributesSpanProcessor())
    chosen = exporter or _exporter_from_env()
    if chosen is not None:
        provider.add_span_processor(batch_processor(chosen) if batch else SimpleSpanProcessor(chosen))
        _export = (
            "custom"
            if exporter is not None
            else "console"
            if isinstance(chosen, ConsoleSpanExporter)
            else "otlp"
        )
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Flush spans still queued (a worker must not lose its last spans on exit)."""
    if _provider is not None:
        _provider.force_flush()
        _provider.shutdown()


def http_telemetry() -> TelemetryConfig:
    """FastAPI's own telemetry settings (`FastAPI(telemetry=...)`): server spans only.

    FastAPI traces each request itself once a tracer provider is configured, naming
    the span after the route. HTTP metrics are Prometheus's job here, and errors are
    logged by the app; per-operation child spans add cost and no insight. Metrics
    scrapes and health checks are not traced.
    """
    return {"metrics": False, "logs": False, "operation_spans": False, "exclude": _untraced}


def _untraced(scope: Any) -> bool:
    return scope.get("path") in UNTRACED_PATHS


@contextmanager
def untraced() -> Iterator[None]:
    """Housekeeping statements inside this block start no spans.

    A worker's claims, lease renewals and watchdog sweeps, and readiness probes, run
    outside any request: traced, each would be a root span of its own (an idle worker
    polls every second), burying the requests' traces in Jaeger. As with the untraced
    HTTP paths, they are left out. Tasks created inside the block inherit the
    suppression: start request work outside it.
    """
    with suppress_instrumentation():
        yield


def instrument_httpx() -> None:
    """Client spans (and traceparent propagation) for outgoing httpx calls."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=_provider)


def current_trace_ids() -> tuple[str | None, str | None]:
    """(trace_id as 32 hex, W3C traceparent) of the active span, or (None, None)."""
    span = trace.get_current_span()
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return format(ctx.trace_id, "032x"), carrier.get("traceparent")
