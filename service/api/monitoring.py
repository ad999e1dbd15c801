"""Monitoring reads: request detail, events, lists, dashboard, hourly metrics, breakers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from service.api import responses
from service.api.deps import BreakersDep, RuntimeDep, SettingsDep, read_access
from service.api.links import request_links
from service.api.params import IsoDateTime
from service.api.schemas import REQUEST_KEY, BreakerRead, RequestDetail
from service.pipeline.breaker_repository import BreakerRepository
from service.request_states import RequestStatus
from service.tracking.queries import MAX_PAGE, RequestFilter
from service.tracking.schemas import DashboardRead, EventRead, HourlyBucket, Page, RequestSummary
from service.video_request import IDENTIFIER, PipelineName
from service.webhooks.repository import DeliveryRepository
from service.webhooks.schemas import DeliveryRead

router = APIRouter(prefix="/api/v1/monitoring", tags=["monitoring"], dependencies=[read_access])

RequestKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=REQUEST_KEY,
        description="The request's UUID or its correlation ID (`vvd_<epoch_ms>_<8 hex>`).",
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip (prefer `cursor`).")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page (keyset pagination).")
]


@router.get("/requests/{request_key}", response_model=RequestDetail, responses=responses.READ_ONE)
async def get_request(request_key: RequestKey, runtime: RuntimeDep, settings: SettingsDep) -> RequestDetail:
    """A request with its stages, progress, video URLs, errors and trace ID.

    `request_key` is the UUID or the correlation ID. Stages come in pipeline order,
    each with its status, timestamps, duration, attempts and error message; a request
    with a `callback_url` lists its callback `deliveries`, each with its attempts.
    """
    read = await runtime.queries.get_request(request_key)
    deliveries: list[DeliveryRead] = []
    if read.parameters.get("callback_url"):
        repository = DeliveryRepository(
            runtime.database,
            source_service=runtime.tracker.source_service,
            source_host=runtime.tracker.source_host,
        )
        attempts = await repository.attempts_for_request(read.id)
        deliveries = [DeliveryRead.of(d, attempts) for d in await repository.for_request(read.id)]
    return RequestDetail(
        **read.model_dump(),
        topic=read.parameters.get("topic"),
        learning_objective=read.parameters.get("learning_objective"),
        links=request_links(settings, read.id, read.trace_id),
        deliveries=deliveries,
    )


@router.get("/requests/{request_key}/events", response_model=list[EventRead], responses=responses.READ_ONE)
async def get_events(
    request_key: RequestKey,
    runtime: RuntimeDep,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1, description="Only events with a larger id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[EventRead]:
    """The request's event timeline, oldest first (page on with `after_id`)."""
    return await runtime.queries.events(request_key, after_id=after_id, limit=limit)


@router.get("/requests", response_model=Page[RequestSummary], responses=responses.READ)
async def list_requests(
    runtime: RuntimeDep,
    status: RequestStatus | None = None,
    user_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=IDENTIFIER)] = None,
    guild_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=IDENTIFIER)] = None,
    pipeline: PipelineName | None = None,
    since: Annotated[IsoDateTime | None, Query(description="Created at or after (ISO 8601).")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[RequestSummary]:
    """Requests, newest first, filtered by status, user, guild, pipeline and creation time."""
    filters = RequestFilter(status=status, user_id=user_id, guild_id=guild_id, pipeline=pipeline, since=since)
    return await runtime.queries.list_requests(filters, limit=limit, offset=offset, cursor=cursor)


Exact = Annotated[
    bool,
    Query(
        description="Compute the percentiles exactly from the window's rows (a scan of the window) "
        "instead of estimating them from the rollups (within 1 %)."
    ),
]


@router.get("/dashboard", response_model=DashboardRead, responses=responses.READ)
async def dashboard(
    runtime: RuntimeDep,
    window_hours: Annotated[int, Query(ge=1, le=24 * 90)] = 24,
    exact: Exact = False,
) -> DashboardRead:
    """The last 24 hours (or `window_hours`): counts by status, P50/P95/P99 of completed
    durations, failure rate in percent, the number of active requests, and spend.

    Counts, the failure rate, the average and the active requests are exact. The
    percentiles are estimated from per-minute and per-hour rollups kept as requests
    finish: each is within 1 % of the exact value (`completed_latency.estimated` and
    `relative_error` say so). With `exact=true` they are computed from the rows.

    `spend_usd` is what the requests created in the window cost (USD, `cost_usd`
    summed; open requests count the attempts billed so far) and `spend_today_usd` the
    same since 00:00 UTC. Both are exact sums, read from the rollups' cost sums (with
    `exact=true`, from the rows); a request whose model has no price adds nothing.
    """
    return await runtime.queries.dashboard(window_hours=window_hours, exact=exact)


@router.get("/metrics", response_model=list[HourlyBucket], responses=responses.READ)
async def hourly_metrics(
    runtime: RuntimeDep,
    since: Annotated[IsoDateTime | None, Query(description="Start (default: 24 h before `until`).")] = None,
    until: Annotated[IsoDateTime | None, Query(description="End (default: now).")] = None,
    pipeline: PipelineName | None = None,
    exact: Exact = False,
) -> list[HourlyBucket]:
    """Hourly buckets (whole UTC hours): counts, failure rate, average, P50 and P95
    durations, per-stage averages.

    Counts, the failure rate and the averages are exact. P50 and P95 are estimated from
    the rollups, each within 1 % of the exact value (`p95_estimated`,
    `p95_relative_error`); with `exact=true` they are computed from the rows. Per-stage averages count the
    stages of finished requests as they stood when their request ended.
    """
    return await runtime.queries.hourly_metrics(since=since, until=until, pipeline=pipeline, exact=exact)


@router.get(
    "/circuit-breakers", response_model=list[BreakerRead], responses=responses.errors(*responses.AUTH, 503)
)
async def circuit_breakers(runtime: RuntimeDep, breakers: BreakersDep) -> list[BreakerRead]:
    """The circuit breaker of each external dependency: state, call, failure and rejection counts.

    Breakers live in the workers that call the dependencies; each worker publishes its
    breakers on every heartbeat, and this folds what every live worker published per
    dependency (the worst state wins, counts add up; `processes` says how many). With no
    worker publishing, this process's own breakers are shown.
    """
    fresh = 3 * runtime.settings.heartbeat_seconds
    published = await BreakerRepository(runtime.database).current(fresh)
    if published:
        return [BreakerRead.model_validate(entry) for entry in published]
    if breakers is None:
        return []
    return [BreakerRead.model_validate({**entry, "processes": 1}) for entry in breakers.snapshot()]
