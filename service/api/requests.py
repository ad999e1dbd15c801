"""Submitting video requests."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.api import responses
from service.api.deps import SubmitAccess, parts_of
from service.api.links import request_links
from service.api.schemas import RequestAccepted, RequestCreate
from service.cost.budgets import BudgetDefaults
from service.errors import ReeltraceError
from telemetry.tracing import current_trace_ids

router = APIRouter(prefix="/api/v1", tags=["requests"])


class RequestIdConflict(ReeltraceError):
    status_code = 409
    error = "request_id_conflict"


@router.post(
    "/requests",
    status_code=202,
    response_model=RequestAccepted,
    responses=responses.errors(*responses.AUTH, 402, 409, 413, 415, 422, 429),
)
async def submit_request(body: RequestCreate, request: Request, principal: SubmitAccess) -> Response:
    """Submit a video request; it is queued as `pending` and run by a worker.

    Needs the `submit` scope. Past the per-user rate limit (`REELTRACE_RATE_LIMIT`)
    the answer is 429 with `Retry-After`, and nothing is stored. A request whose
    estimated cost would take its user or guild past a daily or monthly budget is
    refused with 402 (`budget`: scope, spent, limit, reset time). Sending a
    `request_id` again with the same body returns the request it created (202,
    `created: false`), without counting against the limit; with other values it is
    a 409 naming the fields that differ. If PostgreSQL is unreachable the request
    still runs (`degraded: true`) and is recorded once the database is back.
    """
    # Read here rather than as dependencies: the submit path's one dependency is auth.
    parts = parts_of(request)
    runtime, settings = parts.runtime, parts.settings
    trace_id, traceparent = current_trace_ids()
    created = await runtime.tracker.create_request(
        body,  # the request value itself, validated once, here
        trace_id=trace_id,
        traceparent=traceparent,
        rate_limit=settings.rate,
        budget=BudgetDefaults.from_settings(settings),
    )
    if created.journaled:
        if parts.degraded_runner is not None:
            await parts.degraded_runner(body, created)
    elif created.created:
        # A worker in this process (`serve`) claims it now rather than at its next poll.
        if parts.worker is not None:
            parts.worker.wake()
    else:
        # An idempotent repeat: answer with the original request's identity.
        existing = await runtime.queries.stored_request(created.id)
        if existing["user_id"] != body.user_id:
            raise RequestIdConflict(f"request_id {created.id} belongs to another user's request")
        # A repeated request_id must repeat the request it named: the same id with other
        # values is a client bug (a key reused), answered with the fields that differ.
        differing = body.differing(existing)
        if differing:
            raise RequestIdConflict(
                f"request_id {created.id} was already used for a request with other values of: "
                f"{', '.join(differing)}; send the same body to get that request, or a new request_id"
            )
        trace_id = existing["trace_id"]
    links = request_links(settings, created.id, trace_id)
    accepted = RequestAccepted(
        id=created.id,
        correlation_id=created.correlation_id,
        status=created.status,
        trace_id=trace_id,
        created=created.created,
        degraded=created.journaled,
        links=links,
    )
    # Serialized once, as FastAPI would (by alias, compact) but without validating the
    # model it was just built from again; `response_model` still documents it.
    response = Response(
        accepted.model_dump_json(by_alias=True), status_code=202, media_type="application/json"
    )
    response.headers["Location"] = links.self_
    return response
