"""Rollups against the rows, on random data written through every real path.

Requests finish through the tracker, through the journal (written while PostgreSQL
is unreachable, then replayed), through the watchdog, and by plain SQL; retention
then deletes the old ones. Whatever the path, the rollups' counts and spend equal the
rows' and their percentiles are within the stated relative error of percentile_cont.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from service.request_states import RequestStatus
from service.runtime import Runtime
from service.settings import Settings
from service.tracking import rollup_sql
from service.tracking.cost_tracking import BilledAttempt, Spend
from service.tracking.retention import delete_expired
from service.tracking.rollups import HOUR, RELATIVE_ERROR, Window, floor_to
from service.video_request import VideoRequest
from service.wiring import build_pipeline
from service.worker.worker import Worker
from tests.support.sql import sql_engine

TERMINAL = ("completed", "failed", "timeout")
UNREACHABLE = "postgresql://reeltrace@127.0.0.1:9/reeltrace"
# Older than any pipeline's budget, so the watchdog ends it.
WATCHDOG_AGE = timedelta(hours=3)


@dataclass(frozen=True)
class Spec:
    age_seconds: int
    pipeline: str
    outcome: str  # a status, or "watchdog"
    duration_ms: int
    path: str  # tracker | journal | sql
    billed_seconds: int | None  # None: an unpriced model was billed (cost NULL); 0: nothing billed


specs = st.builds(
    Spec,
    age_seconds=st.integers(min_value=0, max_value=4 * 3600),
    pipeline=st.sampled_from(["veo", "lesson"]),
    outcome=st.sampled_from([*TERMINAL, "pending", "generating", "watchdog"]),
    duration_ms=st.one_of(
        st.integers(min_value=0, max_value=50),
        st.integers(min_value=1000, max_value=400_000),
        st.integers(min_value=20_000, max_value=22_000),
    ),
    path=st.sampled_from(["tracker", "tracker", "journal", "sql"]),
    billed_seconds=st.one_of(st.none(), st.integers(min_value=0, max_value=16)),
)
windows = st.tuples(
    st.integers(min_value=-600, max_value=5 * 3600), st.integers(min_value=1, max_value=5 * 3600)
)


def within(estimate: float | None, exact: float | None) -> bool:
    if exact is None:
        return estimate is None
    assert estimate is not None
    return abs(estimate - exact) <= RELATIVE_ERROR * abs(exact) + 1e-6


async def exact_window(runtime: Runtime, since: datetime, until: datetime) -> dict[str, Any]:
    params = {"since": since, "until": until}
    async with sql_engine(runtime).connect() as conn:
        counts = dict(
            (
                await conn.execute(
                    text(
                        "SELECT status::text, count(*) FROM video_requests"
                        " WHERE created_at >= :since AND created_at < :until GROUP BY 1"
                    ),
                    params,
                )
            ).all()
        )
        pcts = (
            await conn.execute(
                text(
                    "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)"
                    " FROM video_requests WHERE status = 'completed'"
                    " AND created_at >= :since AND created_at < :until"
                ),
                params,
            )
        ).scalar()
        spend = (
            await conn.execute(
                text(
                    "SELECT coalesce(sum(cost_usd), 0) FROM video_requests"
                    " WHERE created_at >= :since AND created_at < :until"
                ),
                params,
            )
        ).scalar()
    return {"counts": {s: int(counts.get(s, 0)) for s in TERMINAL}, "percentiles": pcts, "spend": spend}


async def rollup_window(runtime: Runtime, since: datetime, until: datetime) -> dict[str, Any]:
    params = {**Window.of(since, until).params(), "pipeline": None}
    async with sql_engine(runtime).connect() as conn:
        row = (await conn.execute(rollup_sql.DASHBOARD, params)).mappings().one()
        spend = (await conn.execute(rollup_sql.SPEND, params)).scalar()
    assert spend == row["spend_usd"]  # the dashboard's sum and the spend-only one agree
    return {"counts": {s: int(row[s]) for s in TERMINAL}, "percentiles": row["percentiles"], "spend": spend}


async def assert_parity(runtime: Runtime, since: datetime, until: datetime) -> None:
    exact, rolled = await exact_window(runtime, since, until), await rollup_window(runtime, since, until)
    assert rolled["counts"] == exact["counts"], (since, until)
    assert rolled["spend"] == exact["spend"], (since, until)
    for estimate, value in zip(
        rolled["percentiles"] or [None] * 3, exact["percentiles"] or [None] * 3, strict=True
    ):
        assert within(estimate, value), (since, until, rolled["percentiles"], exact["percentiles"])


async def finish(runtime: Runtime, rid: uuid.UUID, outcome: str) -> None:
    status = RequestStatus(outcome)
    if status is RequestStatus.COMPLETED:
        await runtime.tracker.complete_request(rid, ["https://cdn/v.mp4"])
    else:
        await runtime.tracker.transition(rid, status, error_message="random ending")


async def write(runtime: Runtime, outage: Runtime, anchor: datetime, spec: Spec) -> None:
    """One request, from creation to its outcome, along the spec's path."""
    created = anchor - timedelta(seconds=spec.age_seconds)
    started = created + timedelta(seconds=1)
    ended = started + timedelta(milliseconds=spec.duration_ms)
    if spec.outcome == "watchdog":
        created, started = anchor - WATCHDOG_AGE - timedelta(seconds=spec.age_seconds), None
    via = outage if spec.path == "journal" else runtime
    tracker = via.tracker
    tracker.clock = lambda: created
    parameters = {"topic": "tides"} if spec.pipeline == "lesson" else {}
    new = await tracker.create_request(
        VideoRequest(user_id="parity", prompt="p", pipeline=spec.pipeline, **parameters)
    )
    if spec.outcome in ("pending", "watchdog"):
        return
    tracker.clock = lambda: started
    await tracker.start_request(new.id)
    if spec.billed_seconds != 0:
        # Priced at a price with cents beyond the second decimal, so a rounding shows.
        price = None if spec.billed_seconds is None else Decimal("0.123457")
        billed = BilledAttempt(
            pipeline=spec.pipeline,
            model="veo-test",
            outcome="succeeded",
            seconds=Decimal(spec.billed_seconds or 4),
            usd_per_second=price,
            price_version="parity",
            attempt=1,
            operation_name=None,
        )
        await tracker.record_cost(new.id, Spend(), billed)
    if spec.outcome == "generating":
        return
    if spec.path == "sql":
        async with sql_engine(runtime).begin() as conn:
            await conn.execute(
                text(
                    "UPDATE video_requests SET status = CAST(:s AS request_status), completed_at = :at,"
                    " duration_ms = :ms WHERE id = :id"
                ),
                {"s": spec.outcome, "at": ended, "ms": spec.duration_ms, "id": new.id},
            )
        return
    tracker.clock = lambda: ended
    await finish(via, new.id, spec.outcome)


async def scenario(
    database_url: str, data_dir: Path, requests: list[Spec], spans: list[tuple[int, int]]
) -> None:
    config = Settings(database_url=database_url, data_dir=data_dir, retry_base_seconds=0)
    runtime = Runtime.build(config, database_url, source_service="parity")
    outage = Runtime.build(
        config.model_copy(update={"database_url": UNREACHABLE}), UNREACHABLE, source_service="parity"
    )
    services = build_pipeline(runtime)
    try:
        async with sql_engine(runtime).begin() as conn:
            await conn.execute(
                text(
                    "TRUNCATE video_requests, request_rollups, request_rollup_sketches, stage_rollups CASCADE"
                )
            )
        anchor = datetime.now(UTC).replace(microsecond=0)
        for spec in requests:
            await write(runtime, outage, anchor, spec)
        for tracker in (runtime.tracker, outage.tracker):
            tracker.clock = lambda: datetime.now(UTC)
        await runtime.tracker.backfill()  # the journal's lifecycles land, in order
        assert not runtime.journal.has_pending()
        await Worker(runtime, services.runner, worker_id="parity-watchdog").watchdog()
        async with sql_engine(runtime).connect() as conn:
            stuck = await conn.execute(
                text("SELECT count(*) FROM video_requests WHERE status = 'pending' AND created_at <= :old"),
                {"old": anchor - WATCHDOG_AGE},
            )
            assert stuck.scalar() == 0  # the watchdog ended every request past its budget
        spans_at = [
            (anchor - timedelta(seconds=a), anchor - timedelta(seconds=a) + timedelta(seconds=b))
            for a, b in spans
        ]
        everything = (anchor - timedelta(days=1), anchor + timedelta(days=1))
        for since, until in [everything, *spans_at]:
            await assert_parity(runtime, since, until)

        # Retention: the rows before the cutoff go; the rollups of what is left still match them.
        cutoff = anchor - timedelta(hours=2)
        history = (floor_to(everything[0], HOUR), floor_to(cutoff, HOUR))
        before = await rollup_window(runtime, *history)
        await delete_expired(runtime.database, 1, now=cutoff + timedelta(days=1))
        for since, until in [(cutoff, everything[1]), *spans_at]:
            if since >= cutoff:
                await assert_parity(runtime, since, until)
        # ... and the whole hours before it still show what the rows showed.
        after = await rollup_window(runtime, *history)
        assert after["counts"] == before["counts"]
        assert after["spend"] == before["spend"]
    finally:
        await services.aclose()
        await outage.close()
        await runtime.close()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(requests=st.lists(specs, min_size=1, max_size=40), spans=st.lists(windows, min_size=1, max_size=4))
def test_rollups_match_the_rows_across_every_writer(
    database_url: str, requests: list[Spec], spans: list[tuple[int, int]]
) -> None:
    """Rollup counts and spend equal the rows' and P50/P95/P99 are within 1 %, for any window, after any writer and retention."""
    data_dir = Path(tempfile.mkdtemp(prefix="reeltrace-parity-"))
    try:
        asyncio.run(scenario(database_url, data_dir, requests, spans))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_a_window_from_the_retention_cutoff_counts_only_the_rows_after_it(runtime: Runtime) -> None:
    """Retention's cutoff falls inside a minute early in its hour: a window starting there counts
    exactly the rows left after it (the cutoff's minute is not cut in two, and the minutes of its
    hour outlive the rows they are taken away for)."""
    hour = floor_to(datetime.now(UTC), HOUR) - timedelta(hours=3)
    minute = timedelta(minutes=1)
    cutoff = hour + 20 * minute + timedelta(seconds=45)
    # Deleted (earlier in the hour), and kept (in the cutoff's minute, 15 s before it).
    for at in (hour + 5 * minute, cutoff - timedelta(seconds=15)):
        runtime.tracker.clock = lambda at=at: at  # type: ignore[misc]
        new = await runtime.tracker.create_request(VideoRequest(user_id="retention-edge", prompt="p"))
        await runtime.tracker.start_request(new.id)
        await runtime.tracker.complete_request(new.id, ["https://cdn/v.mp4"])
    await delete_expired(runtime.database, 1, now=cutoff + timedelta(days=1))
    for since in (cutoff, cutoff - timedelta(seconds=30)):
        await assert_parity(runtime, since, since + timedelta(hours=2))
