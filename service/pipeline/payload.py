"""The body a callback carries: the request as it ended, even while tracking is degraded."""

from __future__ import annotations

from typing import Any

import structlog

from service.pipeline.run_state import RunState
from service.tracking.queries import RequestQueries

log = structlog.get_logger("reeltrace.stages")


async def final_payload(queries: RequestQueries, state: RunState) -> dict[str, Any]:
    """The request's final JSON from PostgreSQL; what this run knows when the row is not final yet."""
    if state.tracked:
        try:
            read = await queries.get_request(state.item.id)
        except Exception as exc:  # degraded: fall back to what this run knows
            log.warning("notification_payload_degraded", error=type(exc).__name__)
        else:
            if state.final_status is None or read.status == state.final_status:
                return read.model_dump(mode="json")
            # The run's terminal status is still in the journal (PostgreSQL came back
            # before the replay): the row would tell the client a non-final status.
            log.warning(
                "notification_payload_degraded",
                error="stale_status",
                database_status=read.status.value,
                final_status=state.final_status.value,
            )
    item = state.item
    return {
        "id": str(item.id),
        "correlation_id": item.correlation_id,
        "status": state.final_status.value if state.final_status else "unknown",
        "video_urls": state.video_urls,
        "cost_usd": None if state.spend.cost_usd is None else float(state.spend.cost_usd),
        "tracking": "degraded",
    }
