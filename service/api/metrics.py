"""`GET /metrics`: the Prometheus exposition, OpenMetrics when asked for (exemplars)."""

from __future__ import annotations

import gzip

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import choose_encoder, gzip_accepted

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
    """Every reeltrace metric. Needs no key. Gzipped for a scraper that accepts it."""
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    body = encoder(get_metrics().registry)
    # The histograms' buckets make the text large (and repetitive): Prometheus asks for gzip.
    if gzip_accepted(request.headers.get("accept-encoding", "")):
        return Response(gzip.compress(body), media_type=content_type, headers={"Content-Encoding": "gzip"})
    return Response(body, media_type=content_type)
