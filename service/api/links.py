"""Links from a request to its detail, events, live stream and trace."""

from __future__ import annotations

import uuid

from service.api.schemas import Links
from service.settings import Settings

API = "/api/v1"


def request_links(settings: Settings, request_id: uuid.UUID, trace_id: str | None) -> Links:
    detail = f"{API}/monitoring/requests/{request_id}"
    trace = (
        f"{settings.jaeger_url.rstrip('/')}/trace/{trace_id}" if settings.jaeger_url and trace_id else None
    )
    return Links(
        self_=detail,
        events=f"{detail}/events",
        stream=f"{API}/monitoring/stream?request_id={request_id}",
        trace=trace,
    )
