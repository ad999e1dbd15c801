"""OpenTelemetry helpers shared by the API and the workers."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


def current_trace_ids() -> tuple[str | None, str | None]:
    """(trace_id as 32 hex, W3C traceparent) of the active span, or (None, None)."""
    span = trace.get_current_span()
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return format(ctx.trace_id, "032x"), carrier.get("traceparent")
