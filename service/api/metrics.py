"""`GET /metrics`: the Prometheus exposition, OpenMetrics when asked for (exemplars)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import choose_encoder

from telemetry.metrics import get_metrics

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format, or OpenMetrics (with trace-ID exemplars) when "
            "`Accept` asks for `application/openmetrics-text`.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request) -> Response:
    """Every reeltrace metric. Needs no key."""
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(get_metrics().registry), media_type=content_type)
