"""The rollup trigger, the rebuild and retention's pruning, on a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from service.errors import ValidationFailed
from service.request_states import RequestStatus
from service.runtime import Runtime
from service.tracking import rollup_sql
from service.tracking.cost_tracking import BilledAttempt, Spend
from service.tracking.retention import delete_expired
from service.tracking.rollups import FAR_FUTURE, HOUR, Window, floor_to, rebuild
from service.video_request import VideoRequest
from tests.support.sql import sql_engine


async def finished(
    runtime: Runtime,
    *,
    ago: timedelta = timedelta(minutes=5),
    duration_ms: int = 30_000,
    stages: bool = False,
    billed_seconds: int = 0,
) -> uuid.UUID:
    """A veo request created `ago`, completed by the tracker after `duration_ms` (its first two
    stages completed when `stages`; `billed_seconds` of generation billed at $0.10 a second)."""
    tracker = runtime.tracker
    created_at = datetime.now(UTC) - ago
    tracker.clock = lambda: created_at
    new = await tracker.create_request(VideoRequest(user_id="rollups", prompt="p"))
    tracker.clock = lambda: created_at + timedelta(seconds=1)
    await tracker.start_request(new.id)
    if stages:
        for name in ("validation", "video_generation"):
            await tracker.start_stage(new.id, name)
            await tracker.complete_stage(new.id, name)
    if billed_seconds:
        billed = BilledAttempt(
            pipeline="veo",
            model="veo-test",
            outcome="succeeded",
            seconds=Decimal(billed_seconds),
            usd_per_second=Decimal("0.10"),
            price_version="test",
            attempt=1,
            operation_name=None,
        )
        await tracker.record_cost(new.id, Spend(), billed)
    tracker.clock = lambda: created_at + timedelta(seconds=1, milliseconds=duration_ms)
    await tracker.complete_request(new.id, ["https://cdn/v.mp4"])
    return new.id


async def rows(runtime: Runtime, query: str, **params: Any) -> list[Any]:
    async with sql_engine(runtime).connect() as conn:
        return [tuple(r) for r in await conn.execute(text(query), params)]


async def hourly_totals(runtime: Runtime) -> list[Any]:
    return await rows(
        runtime,
        "SELECT status::text, sum(requests), sum(timed_requests), sum(duration_sum_ms) FROM request_rollups"
        " WHERE bucket_seconds = 3600 GROUP BY 1 ORDER BY 1",
    )


async def sketch_total(runtime: Runtime) -> int:
    [(n,)] = await rows(
        runtime, "SELECT coalesce(sum(requests), 0) FROM request_rollup_sketches WHERE bucket_seconds = 60"
    )
    return int(n)


async def test_a_request_that_finishes_is_counted_once_per_resolution(runtime: Runtime) -> None:
    """Completing a request adds one to its minute and to its hour, with its duration."""
    await finished(runtime, duration_ms=30_000)
    assert await rows(
        runtime,
        "SELECT bucket_seconds, requests, timed_requests, duration_sum_ms FROM request_rollups ORDER BY 1",
    ) == [(60, 1, 1, 30_000), (3600, 1, 1, 30_000)]


async def test_setting_the_same_terminal_status_again_counts_nothing_more(runtime: Runtime) -> None:
    """The no-op refresh of a terminal status moves the duration, never the count."""
    rid = await finished(runtime)
    runtime.tracker.clock = lambda: datetime.now(UTC)
    await runtime.tracker.complete_request(rid, ["https://cdn/v.mp4"])
    [(_, requests, timed, total_ms)] = await hourly_totals(runtime)
    [(duration_ms,)] = await rows(runtime, "SELECT duration_ms FROM video_requests WHERE id = :id", id=rid)
    assert (requests, timed, total_ms) == (1, 1, duration_ms)
    assert await sketch_total(runtime) == 1


async def test_a_terminal_row_without_duration_is_counted_but_not_timed(runtime: Runtime) -> None:
    """A terminal row whose duration_ms is cleared by hand stays counted and leaves the sums and the sketch.

    (A hand-made status change gets its duration filled by the database; clearing it
    afterwards is the one way a terminal row is left without one.)
    """
    created = await runtime.tracker.create_request(VideoRequest(user_id="rollups", prompt="p"))
    await runtime.tracker.start_request(created.id)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text("UPDATE video_requests SET status = 'failed' WHERE id = :id"), {"id": created.id}
        )
    assert await sketch_total(runtime) == 1
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text("UPDATE video_requests SET duration_ms = NULL WHERE id = :id"), {"id": created.id}
        )
    assert await hourly_totals(runtime) == [("failed", 1, 0, 0)]
    assert await sketch_total(runtime) == 0


async def test_moving_a_finished_request_moves_its_counts(runtime: Runtime) -> None:
    """A terminal row whose created_at is changed by hand leaves its old bucket for the new one."""
    rid = await finished(runtime, ago=timedelta(minutes=5))
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text("UPDATE video_requests SET created_at = created_at - interval '3 hours' WHERE id = :id"),
            {"id": rid},
        )
    counted = await rows(
        runtime, "SELECT bucket_start FROM request_rollups WHERE bucket_seconds = 3600 AND requests > 0"
    )
    [(created_at,)] = await rows(runtime, "SELECT created_at FROM video_requests WHERE id = :id", id=rid)
    assert counted == [(floor_to(created_at, HOUR),)]


async def test_deleting_rows_keeps_their_rollups(runtime: Runtime) -> None:
    """Rollups outlive the rows: a deleted request stays counted."""
    await finished(runtime)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("DELETE FROM video_requests"))
    assert await hourly_totals(runtime) == [("completed", 1, 1, 30_000)]


async def test_stage_durations_are_rolled_up_when_their_request_ends(runtime: Runtime) -> None:
    """Hourly per-stage averages from the rollups equal those computed from the rows."""
    for i in range(3):
        await finished(runtime, ago=timedelta(minutes=10 + i), stages=True)
    since = datetime.now(UTC) - timedelta(hours=2)
    estimated = await runtime.queries.hourly_metrics(since=since)
    exact = await runtime.queries.hourly_metrics(since=since, exact=True)
    assert [b.stage_avg_duration_ms for b in estimated] == [b.stage_avg_duration_ms for b in exact]
    assert set(estimated[0].stage_avg_duration_ms) == {"validation", "video_generation"}


async def test_rebuild_recomputes_what_a_bulk_load_left_out(runtime: Runtime) -> None:
    """Rows written with the triggers off are counted after a rebuild, and counted once."""
    await finished(runtime)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(
            text(
                "INSERT INTO video_requests (id, correlation_id, user_id, prompt, status, created_at, started_at,"
                " completed_at, duration_ms) SELECT gen_random_uuid(), 'vvd_1732312345678_' || lpad(i::text, 8, '0'),"
                " 'bulk', 'p', 'timeout', now(), now(), now(), 1000 FROM generate_series(1, 4) AS i"
            )
        )
    report = await rebuild(runtime.database)
    assert report.requests == 5
    assert await hourly_totals(runtime) == [("completed", 1, 1, 30_000), ("timeout", 4, 4, 4000)]
    assert await sketch_total(runtime) == 5


async def test_rebuild_refuses_to_erase_history_before_the_retention_horizon(runtime: Runtime) -> None:
    """A rebuild from before the retention horizon is refused, naming `since`."""
    with pytest.raises(ValidationFailed) as caught:
        await rebuild(runtime.database, since=datetime.now(UTC) - timedelta(days=40), retention_days=30)
    assert caught.value.context == {"field": "since"}
    assert "retention horizon" in str(caught.value.detail)


async def test_rebuild_keeps_the_history_of_deleted_rows_by_default(runtime: Runtime) -> None:
    """With retention set, a rebuild starts at the horizon, so the rollups of deleted rows stay."""
    await finished(runtime, ago=timedelta(days=40))
    await delete_expired(runtime.database, 30)
    report = await rebuild(runtime.database, retention_days=30)
    assert report.since is not None
    assert await hourly_totals(runtime) == [("completed", 1, 1, 30_000)]


async def test_retention_prunes_the_minutes_and_keeps_the_hours(runtime: Runtime) -> None:
    """Retention deletes the minute-level rollups before its cutoff; the hourly ones stay."""
    await finished(runtime, ago=timedelta(days=40))
    await finished(runtime, ago=timedelta(minutes=5))
    await delete_expired(runtime.database, 30)
    assert await rows(
        runtime, "SELECT bucket_seconds, count(*) FROM request_rollups GROUP BY 1 ORDER BY 1"
    ) == [(60, 1), (3600, 2)]
    assert await rows(
        runtime, "SELECT count(*) FROM video_requests WHERE status = :s", s=RequestStatus.COMPLETED.value
    ) == [(1,)]


async def test_summary_view_counts_from_the_rollups_equal_the_rows(runtime: Runtime) -> None:
    """request_metrics_summary, now read from the rollups, counts each hour's outcomes as the rows do."""
    await finished(runtime, ago=timedelta(minutes=5))
    await finished(runtime, ago=timedelta(hours=2, minutes=5), duration_ms=90_000)
    await runtime.tracker.create_request(VideoRequest(user_id="rollups", prompt="waiting"))
    summary = await rows(
        runtime,
        "SELECT hour, pipeline, total_requests, completed, active FROM request_metrics_summary ORDER BY 1",
    )
    exact = await rows(
        runtime,
        "SELECT date_bin(interval '1 hour', created_at, TIMESTAMPTZ '2000-01-01 00:00+00'), pipeline, count(*),"
        " count(*) FILTER (WHERE status = 'completed'),"
        " count(*) FILTER (WHERE status IN ('pending', 'generating'))"
        " FROM video_requests GROUP BY 1, 2 ORDER BY 1",
    )
    assert summary == exact


async def spend_by_resolution(runtime: Runtime) -> list[Any]:
    return await rows(
        runtime, "SELECT bucket_seconds, sum(cost_usd_sum) FROM request_rollups GROUP BY 1 ORDER BY 1"
    )


async def test_a_finished_request_adds_its_cost_to_both_resolutions(runtime: Runtime) -> None:
    """The cost a request was billed before it ended is summed into its minute and its hour."""
    await finished(runtime, billed_seconds=8)
    assert await spend_by_resolution(runtime) == [(60, Decimal("0.8")), (3600, Decimal("0.8"))]


async def test_a_request_that_billed_nothing_adds_zero(runtime: Runtime) -> None:
    """A request ended with nothing billed gets cost 0 from its BEFORE trigger, and the rollup sums 0."""
    rid = await finished(runtime)
    assert await rows(runtime, "SELECT cost_usd FROM video_requests WHERE id = :id", id=rid) == [
        (Decimal(0),)
    ]
    assert await spend_by_resolution(runtime) == [(60, Decimal(0)), (3600, Decimal(0))]


async def test_changing_a_finished_requests_cost_moves_the_sum(runtime: Runtime) -> None:
    """A terminal row whose cost_usd is changed by hand replaces its old cost in the sums."""
    rid = await finished(runtime, billed_seconds=8)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("UPDATE video_requests SET cost_usd = 2.5 WHERE id = :id"), {"id": rid})
    assert await spend_by_resolution(runtime) == [(60, Decimal("2.5")), (3600, Decimal("2.5"))]
    assert await hourly_totals(runtime) == [("completed", 1, 1, 30_000)]


async def test_an_unpriced_cost_adds_nothing(runtime: Runtime) -> None:
    """A finished request whose cost is set to NULL (an unpriced model) leaves the sums at 0."""
    rid = await finished(runtime, billed_seconds=8)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("UPDATE video_requests SET cost_usd = NULL WHERE id = :id"), {"id": rid})
    assert await spend_by_resolution(runtime) == [(60, Decimal(0)), (3600, Decimal(0))]


async def test_rebuild_recomputes_the_cost_sums(runtime: Runtime) -> None:
    """Costs written with the triggers off are summed after a rebuild, each once."""
    await finished(runtime, billed_seconds=8)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text("UPDATE video_requests SET cost_usd = 1.25"))
    assert await spend_by_resolution(runtime) == [(60, Decimal("0.8")), (3600, Decimal("0.8"))]
    await rebuild(runtime.database)
    assert await spend_by_resolution(runtime) == [(60, Decimal("1.25")), (3600, Decimal("1.25"))]


async def test_spend_of_any_window_equals_the_rows_sum(runtime: Runtime) -> None:
    """For windows whose edges cut hours and minutes, the rollups' spend equals SUM(cost_usd) of the rows."""
    ages = [timedelta(seconds=s) for s in (20, 50, 95, 130, 2000, 3700, 4000, 7300, 9000)]
    for i, ago in enumerate(ages):
        await finished(runtime, ago=ago, billed_seconds=i + 1)
    runtime.tracker.clock = lambda: datetime.now(UTC) - timedelta(seconds=40)
    open_one = await runtime.tracker.create_request(VideoRequest(user_id="rollups", prompt="p"))
    await runtime.tracker.start_request(open_one.id)
    billed = BilledAttempt(
        pipeline="veo",
        model="veo-test",
        outcome="succeeded",
        seconds=Decimal(4),
        usd_per_second=Decimal("0.10"),
        price_version="test",
        attempt=1,
        operation_name=None,
    )
    await runtime.tracker.record_cost(open_one.id, Spend(), billed)  # open: its attempts so far count
    now = datetime.now(UTC)
    for since, until in [
        (now - timedelta(seconds=100), FAR_FUTURE),
        (now - timedelta(seconds=60), now - timedelta(seconds=30)),
        (now - timedelta(seconds=3800), now - timedelta(seconds=45)),
        (now - timedelta(hours=3), now - timedelta(seconds=3650)),
        (now - timedelta(hours=3), FAR_FUTURE),
    ]:
        params = {**Window.of(since, until).params(), "pipeline": None}
        [(rolled,)] = await rows(runtime, rollup_sql.SPEND.text, **params)
        [(exact,)] = await rows(
            runtime,
            "SELECT coalesce(sum(cost_usd), 0) FROM video_requests WHERE created_at >= :s AND created_at < :u",
            s=since,
            u=until,
        )
        assert rolled == exact, (since, until)
        assert rolled > 0, (since, until)  # every window holds a billed request
