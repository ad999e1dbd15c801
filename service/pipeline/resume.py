"""What a run resuming another's work reads back: the attempt it continues, and its span.

A run may take over a request another run left half-way (its worker died, stalled past
its lease, or was stopped). Whether the stage's last attempt was cut off (then it runs
again under its own number: a takeover is a resume, not a retry) or had failed and
awaited its retry (then the next attempt follows) is read from the stage's events, as
is the span of the attempt before, which the new attempt's span links to.
"""

from __future__ import annotations

from opentelemetry.trace import Link, SpanContext, TraceFlags

from service.pipeline.run_state import RunState
from service.request_states import StageStatus
from service.tracking.queries import RequestQueries


async def cut_off(queries: RequestQueries, state: RunState, stage: str) -> bool:
    """True if the stage's last attempt was left in progress by a run that stopped, rather
    than failed and awaiting a retry (whose `retry` event names that attempt)."""
    row = state.stages[stage]
    if not state.tracked or row.status != StageStatus.IN_PROGRESS or row.attempts == 0:
        return False
    retry = await queries.latest_event(state.item.id, "retry", stage)
    return retry is None or retry.data.get("attempt") != row.attempts


async def resume_link(queries: RequestQueries, state: RunState, stage: str) -> list[Link]:
    """Link a resumed attempt to the attempt before it (which a dead worker left open)."""
    if not state.tracked or state.stages[stage].attempts == 0:
        return []
    event = await queries.latest_event(state.item.id, "stage_started", stage)
    if event is None or "span_id" not in event.data or "trace_id" not in event.data:
        return []
    previous = SpanContext(
        trace_id=int(event.data["trace_id"], 16),
        span_id=int(event.data["span_id"], 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return [Link(previous, {"reeltrace.link": "previous_attempt"})]
