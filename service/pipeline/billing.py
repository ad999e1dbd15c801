"""Billing a finished generation operation to its request (see service.cost.pricing)."""

from __future__ import annotations

from decimal import Decimal

from service.backends.base import OperationStatus
from service.cost.pricing import billable_seconds
from service.pipeline.run_state import RunState
from service.request_states import RequestStatus
from service.tracking.cost_tracking import BilledAttempt
from service.tracking.queries import RequestQueries
from service.tracking.tracker import RequestTracker


async def bill_operation(
    tracker: RequestTracker,
    queries: RequestQueries,
    model: str,
    state: RunState,
    status: OperationStatus,
    attempt: int,
    operation_name: str,
) -> None:
    """Record what the finished operation billed, once per operation across resumes."""
    item = state.item
    if state.tracked and item.status != RequestStatus.PENDING and state.spend.billable_seconds > 0:
        # A resumed run polls again the operation its dead predecessor may have billed.
        last = await queries.latest_event(item.id, "cost_recorded", "video_generation")
        if last is not None and last.data.get("operation_name") == operation_name:
            return
    if state.price_version is None:
        # Created while PostgreSQL was unreachable (or before prices existed): price it now.
        request = state.request
        quote = tracker.pricing.quote(request.duration_seconds, request.resolution, request.generate_audio)
        state.usd_per_second, state.price_version = quote.usd_per_second, quote.version
    seconds = billable_seconds(status, state.request.duration_seconds, state.request.sample_count or 1)
    billed = BilledAttempt(
        pipeline=item.pipeline,
        model=model,
        outcome=status.state.value,
        seconds=seconds,
        usd_per_second=state.usd_per_second,
        price_version=state.price_version,
        attempt=attempt,
        operation_name=operation_name,
    )
    state.spend = await tracker.record_cost(item.id, state.spend, billed)


async def bill_call(tracker: RequestTracker, state: RunState, model: str, attempt: int) -> None:
    """Record a per-call charge (the lesson script's Gemini call), at the current table's price."""
    item = state.item
    billed = BilledAttempt(
        pipeline=item.pipeline,
        model=model,
        outcome="succeeded",
        seconds=Decimal(0),
        usd_per_second=tracker.pricing.prices.per_call(model),
        price_version=tracker.pricing.version,
        attempt=attempt,
        operation_name=None,
        stage="script_generation",
        per_call=True,
    )
    state.spend = await tracker.record_cost(item.id, state.spend, billed)
