"""Query Interface: user history, request detail, events, lists, dashboard, hourly metrics."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from service.db.database import Database
from service.db.urls import libpq_dsn
from service.errors import RequestNotFound, ValidationFailed
from service.request_states import RequestStatus
from service.runtime import Runtime
from service.settings import Settings
from service.tracking.queries import RequestFilter, RequestQueries
from service.video_request import VideoRequest
from tests.support.logs import json_logs
from tests.support.pipelines import stage_names
from tests.support.sql import sql_engine


async def make(
    runtime: Runtime, user: str, n: int, *, guild: str = "g", finish: RequestStatus | None = None
) -> list[uuid.UUID]:
    ids = []
    for i in range(n):
        created = await runtime.tracker.create_request(
            VideoRequest(user_id=user, guild_id=guild, prompt=f"prompt {i}")
        )
        if finish is not None:
            await runtime.tracker.start_request(created.id)
            await runtime.tracker.transition(created.id, finish)
        ids.append(created.id)
    return ids


async def test_user_history_is_newest_first_with_limit_and_offset(runtime: Runtime) -> None:
    """History is ordered by created_at descending and paginates with limit/offset."""
    ids = await make(runtime, "alice", 5)
    await make(runtime, "bob", 2)
    page1 = await runtime.queries.user_history("alice", limit=2)
    page2 = await runtime.queries.user_history("alice", limit=2, offset=2)
    assert [r.id for r in page1.items] == ids[::-1][:2]
    assert [r.id for r in page2.items] == ids[::-1][2:4]
    assert all(r.user_id == "alice" for r in page1.items + page2.items)


async def test_user_history_cursor_walks_every_row_once(runtime: Runtime) -> None:
    """Following next_cursor visits all of a user's requests exactly once, newest first."""
    ids = await make(runtime, "carol", 7)
    seen, cursor = [], None
    while True:
        page = await runtime.queries.user_history("carol", limit=3, cursor=cursor)
        seen += [r.id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids[::-1]


async def test_user_history_filters_by_status(runtime: Runtime) -> None:
    """The optional status filter returns only requests in that status."""
    done = await make(runtime, "dave", 2, finish=RequestStatus.COMPLETED)
    await make(runtime, "dave", 3)
    page = await runtime.queries.user_history("dave", status=RequestStatus.COMPLETED)
    assert sorted(r.id for r in page.items) == sorted(done)


async def test_bad_cursor_and_page_bounds_are_validation_errors(runtime: Runtime) -> None:
    """A forged cursor or an out-of-range limit is refused naming the field."""
    with pytest.raises(ValidationFailed) as bad_cursor:
        await runtime.queries.user_history("x", cursor="not-a-cursor!")
    assert bad_cursor.value.context["field"] == "cursor"
    with pytest.raises(ValidationFailed) as bad_limit:
        await runtime.queries.user_history("x", limit=0)
    assert bad_limit.value.context["field"] == "limit"
    # A cursor with an offset: which one places the page is ambiguous, so neither is guessed.
    await make(runtime, "x", 2)
    cursor = (await runtime.queries.user_history("x", limit=1)).next_cursor
    with pytest.raises(ValidationFailed, match="either cursor or offset") as both:
        await runtime.queries.user_history("x", limit=1, cursor=cursor, offset=1)
    assert both.value.context["field"] == "offset"


async def test_request_detail_by_uuid_or_correlation_id(runtime: Runtime) -> None:
    """A request is found by its UUID and by its correlation ID, with its stages in order."""
    created = await runtime.tracker.create_request(VideoRequest(user_id="e", prompt="p"))
    by_id = await runtime.queries.get_request(created.id)
    by_correlation = await runtime.queries.get_request(created.correlation_id)
    assert by_id == by_correlation
    assert [s.order for s in by_id.stages] == list(range(1, len(stage_names()) + 1))
    with pytest.raises(RequestNotFound):
        await runtime.queries.get_request(uuid.uuid4())
    with pytest.raises(RequestNotFound):
        await runtime.queries.get_request("neither")


async def test_events_timeline_pages_after_an_id(runtime: Runtime) -> None:
    """Events come oldest first and can be read after a given event id."""
    created = await runtime.tracker.create_request(VideoRequest(user_id="f", prompt="p"))
    await runtime.tracker.start_request(created.id)
    await runtime.tracker.log_event(created.id, "api_call", "called the model", data={"ms": 12})
    events = await runtime.queries.events(created.id)
    later = await runtime.queries.events(created.id, after_id=events[0].id)
    assert [e.event_type for e in events] == ["request_created", "request_started", "api_call"]
    assert [e.id for e in later] == [e.id for e in events[1:]]
    assert events[2].data == {"ms": 12}
    by_correlation = await runtime.queries.events(created.correlation_id)
    assert [e.id for e in by_correlation] == [e.id for e in events]


async def test_monitoring_list_filters(runtime: Runtime) -> None:
    """The monitoring list filters by status, user, guild and since."""
    failed = await make(runtime, "gina", 2, guild="g1", finish=RequestStatus.FAILED)
    await make(runtime, "hank", 2, guild="g2")
    by_status = await runtime.queries.list_requests(RequestFilter(status=RequestStatus.FAILED))
    by_guild = await runtime.queries.list_requests(RequestFilter(guild_id="g2"))
    by_user_since = await runtime.queries.list_requests(
        RequestFilter(user_id="gina", since=datetime.now(UTC) - timedelta(minutes=5))
    )
    future = await runtime.queries.list_requests(RequestFilter(since=datetime.now(UTC) + timedelta(hours=1)))
    assert sorted(r.id for r in by_status.items) == sorted(failed)
    assert {r.user_id for r in by_guild.items} == {"hank"}
    assert sorted(r.id for r in by_user_since.items) == sorted(failed)
    assert future.items == []


async def seed_durations(runtime: Runtime, durations_ms: list[int], status: str = "completed") -> None:
    """Requests finished with exact durations, written as an operator would (via SQL)."""
    async with sql_engine(runtime).begin() as conn:
        for ms in durations_ms:
            created = await runtime.tracker.create_request(VideoRequest(user_id="stats", prompt="p"))
            await conn.execute(
                text(
                    "UPDATE video_requests SET status = 'generating', started_at = now() - interval '1 hour'"
                    " WHERE id = :id"
                ),
                {"id": created.id},
            )
            await conn.execute(
                text(
                    "UPDATE video_requests SET status = CAST(:s AS request_status),"
                    " completed_at = started_at + make_interval(secs => :ms / 1000.0), duration_ms = :ms"
                    " WHERE id = :id"
                ),
                {"id": created.id, "ms": ms, "s": status},
            )


async def test_dashboard_counts_percentiles_and_failure_rate(runtime: Runtime) -> None:
    """The 24 h dashboard has counts by status, P50/P95/P99 of completed durations (within 1 %) and the failure rate."""
    await seed_durations(runtime, [1000 * i for i in range(1, 101)])
    await seed_durations(runtime, [5000] * 20, status="failed")
    await seed_durations(runtime, [300000] * 5, status="timeout")
    await make(runtime, "waiting", 3)
    dash = await runtime.queries.dashboard()
    assert dash.counts_by_status == {
        "pending": 3,
        "generating": 0,
        "completed": 100,
        "failed": 20,
        "timeout": 5,
    }
    assert dash.total_requests == 128
    assert dash.completed_latency.p50_ms == pytest.approx(50500, rel=0.01)
    assert dash.completed_latency.p95_ms == pytest.approx(95050, rel=0.01)
    assert dash.completed_latency.p99_ms == pytest.approx(99010, rel=0.01)
    assert dash.failure_rate_pct == pytest.approx(100 * 25 / 125)
    assert dash.active_requests == 3


async def test_exact_dashboard_percentiles_are_percentile_cont(runtime: Runtime) -> None:
    """With exact=True the percentiles are computed from the rows, interpolated as percentile_cont does."""
    await seed_durations(runtime, [1000 * i for i in range(1, 101)])
    latency = (await runtime.queries.dashboard(exact=True)).completed_latency
    assert (latency.p50_ms, latency.p95_ms, latency.p99_ms) == (
        pytest.approx(50500),
        pytest.approx(95050),
        pytest.approx(99010),
    )
    assert (latency.estimated, latency.relative_error) == (False, None)


async def test_dashboard_window_excludes_older_requests(runtime: Runtime) -> None:
    """Requests created before the 24 h window are not counted."""
    await make(runtime, "old", 2)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("UPDATE video_requests SET created_at = now() - interval '2 days'"))
    await make(runtime, "new", 1)
    assert (await runtime.queries.dashboard()).total_requests == 1


async def test_hourly_metrics_bucket_by_hour(runtime: Runtime) -> None:
    """Hourly buckets count requests per hour with failure rate and durations."""
    await seed_durations(runtime, [2000, 4000])
    await seed_durations(runtime, [1000], status="failed")
    buckets = await runtime.queries.hourly_metrics()
    assert len(buckets) == 1
    [bucket] = buckets
    assert (bucket.total_requests, bucket.completed, bucket.failed) == (3, 2, 1)
    assert bucket.failure_rate_pct == pytest.approx(33.33)
    assert bucket.avg_duration_ms == pytest.approx(3000)
    # A window that ends before it starts is refused, naming the end it was compared with.
    later = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(ValidationFailed, match=r"since must be before now \(until is not given\)"):
        await runtime.queries.hourly_metrics(since=later)
    with pytest.raises(ValidationFailed, match=r"since must be before until$"):
        await runtime.queries.hourly_metrics(since=later, until=later - timedelta(minutes=1))


async def test_slow_queries_are_logged_and_very_slow_ones_warned(runtime: Runtime) -> None:
    """A query over the slow threshold is logged with type and parameter count; over the second, warned."""
    await make(runtime, "slow", 1)
    slow = RequestQueries(runtime.database, slow_ms=0.0001, very_slow_ms=10_000)
    very_slow = RequestQueries(runtime.database, slow_ms=0.0001, very_slow_ms=0.0002)
    with json_logs() as lines:
        await slow.user_history("slow", limit=5)
        await very_slow.dashboard()
    # The dashboard reads in more than one statement (its rollups, today's spend): each is warned.
    info, *warnings = lines("slow_query")
    assert (info["level"], info["query_type"]) == ("info", "user_history")
    assert info["parameter_count"] == 3
    assert warnings
    for warning in warnings:
        assert warning["level"] == "warning"
        assert warning["query_type"].startswith("dashboard"), warning
        assert warning["duration_ms"] > 0


async def test_a_wait_for_the_pool_is_not_charged_to_the_query(settings: Settings, database_url: str) -> None:
    """A query that first waited for a pooled connection, then for a lock, logs the two apart: a
    `slow_pool_wait` line, and a `slow_query` line whose time and wait do not overlap."""
    database = Database(database_url, max_size=1)
    queries = RequestQueries(database, slow_ms=100, very_slow_ms=10_000)
    locker = await psycopg.AsyncConnection.connect(libpq_dsn(database_url))
    try:
        # The statement will be slow for a reason of its own: a lock it must wait for.
        await locker.execute("LOCK TABLE video_requests IN ACCESS EXCLUSIVE MODE")
        with json_logs() as lines:
            async with database.connection():  # the pool's only connection, taken
                began = time.monotonic()
                waiting = asyncio.create_task(queries.user_history("nobody"))
                await asyncio.sleep(0.3)
            await wait_for_lock_waiter(locker)
            await asyncio.sleep(0.3)
            await locker.commit()
            await waiting
            elapsed_ms = (time.monotonic() - began) * 1000
    finally:
        await locker.close()
        await database.close()
    [wait] = lines("slow_pool_wait")
    [query] = lines("slow_query")
    assert (wait["level"], wait["query_type"]) == ("info", "user_history")
    assert (query["level"], query["query_type"]) == ("info", "user_history")
    assert wait["pool_wait_ms"] >= 300
    assert query["duration_ms"] >= 300
    assert query["pool_wait_ms"] == wait["pool_wait_ms"]
    # Both happened inside the call, one after the other: charged twice, they would not fit.
    assert query["duration_ms"] + query["pool_wait_ms"] <= elapsed_ms


async def wait_for_lock_waiter(locker: psycopg.AsyncConnection[Any]) -> None:
    """Until another session waits for a lock that `locker` holds."""
    async with asyncio.timeout(20):
        while True:
            cursor = await locker.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
            row = await cursor.fetchone()
            if row and row[0]:
                return
            await asyncio.sleep(0.02)


async def test_fast_queries_are_not_logged(runtime: Runtime) -> None:
    """Under 100 ms nothing is logged."""
    with json_logs() as lines:
        await runtime.queries.user_history("nobody")
    assert lines("slow_query") == []


async def test_oldest_generating_age_counts_from_the_start(runtime: Runtime) -> None:
    """A request that queued for an hour and then started is seconds into its generation, not an hour:
    the gauge the stuck-request alert reads must not page for queueing time."""
    queued = await runtime.tracker.create_request(VideoRequest(user_id="q", prompt="waited long"))
    waiting = await runtime.tracker.create_request(VideoRequest(user_id="q", prompt="still waiting"))
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text("UPDATE video_requests SET created_at = now() - interval '1 hour' WHERE id = ANY(:ids)"),
            {"ids": [queued.id, waiting.id]},
        )
    await runtime.tracker.start_request(queued.id)
    ages = await runtime.queries.oldest_active_ages()
    assert ages["generating"] < 60
    assert 3590 < ages["pending"] < 3700
