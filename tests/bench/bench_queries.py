"""Benchmark: tracking queries on 1,000,000 requests, and write throughput.

Run: `python -m pytest tests/bench/bench_queries.py -s` (not part of the suite).
Prints user-history and dashboard latency percentiles (spec: < 100 ms and < 500 ms;
targets < 5 ms and < 50 ms) and create+complete lifecycles per second beside a raw
single-row INSERT baseline measured in the same run, on the same server and driver.
The server keeps PostgreSQL's default durability (fsync on).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text

from service.request_states import RequestStatus
from service.runtime import Runtime
from service.settings import Settings
from service.video_request import VideoRequest
from telemetry.logging import configure_logging
from tests.support.pg import PgCluster
from tests.support.sql import sql_engine

TOTAL = 1_000_000
HEAVY_USER = "heavy-user"
HEAVY_ROWS = 10_000
LIFECYCLES = 3000
CONCURRENCY = 16

# Spread over 30 days; ~85% completed, 8% failed, 4% timeout, the rest open.
LOAD = f"""
SET session_replication_role = replica;
INSERT INTO video_requests (id, correlation_id, pipeline, user_id, guild_id, channel_id, prompt,
    aspect_ratio, status, created_at, started_at, completed_at, duration_ms, updated_at, progress_percentage)
SELECT gen_random_uuid(),
       'vvd_' || lpad((1700000000000 + i)::text, 13, '0') || '_' || substr(md5(i::text), 1, 8),
       CASE WHEN i % 10 = 0 THEN 'lesson' ELSE 'veo' END,
       CASE WHEN i <= {HEAVY_ROWS} THEN '{HEAVY_USER}' ELSE 'user_' || (i % 100000) END,
       'guild_' || (i % 500), 'chan_' || (i % 5000),
       (ARRAY['a cat surfing a wave', 'city skyline timelapse', 'a dragon over mountains',
              'photosynthesis explained', 'a robot making coffee'])[1 + i % 5] || ' #' || (i % 1000),
       CASE WHEN i % 3 = 0 THEN '9:16' ELSE '16:9' END,
       status::request_status,
       created_at,
       CASE WHEN status <> 'pending' THEN created_at + interval '2 seconds' END,
       CASE WHEN status IN ('completed', 'failed', 'timeout')
            THEN created_at + interval '2 seconds' + ms * interval '1 millisecond' END,
       CASE WHEN status IN ('completed', 'failed', 'timeout') THEN ms END,
       created_at, CASE WHEN status = 'completed' THEN 100 ELSE 50 END
FROM (
    SELECT i,
           now() - random() * interval '30 days' AS created_at,
           (20000 + random() * 160000 + CASE WHEN random() < 0.05 THEN 200000 ELSE 0 END)::bigint AS ms,
           CASE WHEN i % 100 < 85 THEN 'completed' WHEN i % 100 < 93 THEN 'failed'
                WHEN i % 100 < 97 THEN 'timeout' WHEN i % 100 < 99 THEN 'generating'
                ELSE 'pending' END AS status
    FROM generate_series(1, {TOTAL}) AS i
) AS g;
SET session_replication_role = DEFAULT
"""


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    await fn()  # warm the pool and the plan
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def report(name: str, samples: list[float], target_ms: float, spec_ms: float) -> None:
    p50, p99 = pct(samples, 0.5), pct(samples, 0.99)
    print(
        f"  {name:<34} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   "
        f"(target < {target_ms:g} ms, spec < {spec_ms:g} ms)   n={len(samples)}"
    )


async def concurrently(n: int, fn: Callable[[int], Awaitable[object]]) -> float:
    """Run fn(0..n-1) with CONCURRENCY workers; returns the wall time in seconds."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def drain() -> None:
        while not queue.empty():
            await fn(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(drain() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


async def run_bench(runtime: Runtime) -> None:
    started = time.perf_counter()
    async with sql_engine(runtime).begin() as conn:
        for statement in LOAD.split(";\n"):
            if statement.strip():
                await conn.execute(text(statement))
    # As autovacuum would: statistics and the visibility map for index-only scans.
    async with sql_engine(runtime).connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE video_requests"))
    print(
        f"\nloaded {TOTAL:,} requests ({HEAVY_ROWS:,} for one user) in {time.perf_counter() - started:.1f} s"
    )

    q = runtime.queries
    print("reads:")
    report(
        "user history, first page (20)",
        await timed(lambda: q.user_history(HEAVY_USER, limit=20), 500),
        5,
        100,
    )
    page = await q.user_history(HEAVY_USER, limit=20, offset=4000)
    cursor = page.next_cursor
    report(
        "user history, cursor deep (20)",
        await timed(lambda: q.user_history(HEAVY_USER, limit=20, cursor=cursor), 500),
        5,
        100,
    )
    report(
        "user history, status=failed (20)",
        await timed(lambda: q.user_history(HEAVY_USER, status=RequestStatus.FAILED, limit=20), 500),
        5,
        100,
    )
    one = page.items[0]
    report("request detail, by UUID", await timed(lambda: q.get_request(one.id), 500), 5, 100)
    report(
        "request detail, by correlation ID",
        await timed(lambda: q.get_request(one.correlation_id), 500),
        5,
        100,
    )
    report("global dashboard (24 h)", await timed(q.dashboard, 100), 50, 500)

    print(f"writes ({CONCURRENCY} concurrent sessions, fsync on):")
    t = runtime.tracker

    async def lifecycle(i: int) -> None:
        created = await t.create_request(
            VideoRequest(user_id=f"bench_{i % 997}", guild_id="g", prompt=f"bench {i}")
        )
        await t.start_request(created.id)
        await t.complete_request(created.id, [f"https://cdn/{i}.mp4"])

    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE raw_inserts (id uuid PRIMARY KEY, user_id text, prompt text, created_at timestamptz)"
            )
        )

    async def raw_insert(i: int) -> None:
        async with sql_engine(runtime).begin() as conn:
            await conn.execute(
                text("INSERT INTO raw_inserts VALUES (:id, :u, :p, now())"),
                {"id": uuid.uuid4(), "u": f"bench_{i % 997}", "p": f"bench {i}"},
            )

    raw_seconds = await concurrently(LIFECYCLES, raw_insert)
    life_seconds = await concurrently(LIFECYCLES, lifecycle)
    raw_rate, life_rate = LIFECYCLES / raw_seconds, LIFECYCLES / life_seconds
    print(f"  raw single-row INSERT baseline     {raw_rate:8.0f} inserts/s")
    print(
        f"  create+start+complete lifecycle    {life_rate:8.0f} lifecycles/s"
        f"  (= {3 * life_rate:.0f} tracking writes/s; {life_rate / raw_rate:.2f} lifecycles per raw insert)"
    )


def test_bench_queries() -> None:
    """Prints the figures; asserts nothing about time (benchmarks are not tests of speed)."""
    # Logs are written as in production (JSON lines), to a sink that costs no terminal time.
    configure_logging("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    root = Path(tempfile.mkdtemp(prefix="reeltrace-bench-"))
    cluster = PgCluster(root, durable=True)
    try:
        url = cluster.url(cluster.new_database(from_template=False))
        from service.db import migrate

        migrate.upgrade(url)
        settings = Settings(database_url=url, data_dir=root / "data", db_pool_size=CONCURRENCY)

        async def main() -> None:
            runtime = Runtime.build(settings, url, source_service="bench")
            try:
                await run_bench(runtime)
            finally:
                await runtime.close()

        asyncio.run(main())
    finally:
        cluster.server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


# --- a busy day ------------------------------------------------------------------------
# REELTRACE_BENCH_BUSY_TOTAL requests over 30 days, a tenth of them in the last 24 h
# (10 million and 1 million by default), a few hundred still open.
BUSY_TOTAL = int(os.environ.get("REELTRACE_BENCH_BUSY_TOTAL", "10000000"))
BUSY_CHUNK = 1_000_000
BUSY_OPEN_EVERY = 3333  # of the last day's requests: ~300 open at 1 million
TERMINAL_WRITES = 500

BUSY_LOAD = """
INSERT INTO video_requests (id, correlation_id, pipeline, user_id, guild_id, channel_id, prompt,
    status, created_at, started_at, completed_at, duration_ms, updated_at, progress_percentage)
SELECT gen_random_uuid(),
       'vvd_' || lpad((1700000000000 + i)::text, 13, '0') || '_' || substr(md5(i::text), 1, 8),
       CASE WHEN i % 7 = 0 THEN 'lesson' ELSE 'veo' END,
       CASE WHEN i <= :heavy_rows THEN :heavy_user ELSE 'user_' || (i % 100000) END,
       'guild_' || (i % 500), 'chan_' || (i % 5000), 'busy day #' || (i % 1000),
       status::request_status, created_at,
       CASE WHEN status <> 'pending' THEN created_at + interval '2 seconds' END,
       CASE WHEN status IN ('completed', 'failed', 'timeout')
            THEN created_at + interval '2 seconds' + ms * interval '1 millisecond' END,
       CASE WHEN status IN ('completed', 'failed', 'timeout') THEN ms END,
       created_at, CASE WHEN status = 'completed' THEN 100 ELSE 50 END
FROM (
    SELECT i,
           CASE WHEN i % 10 <> 0 THEN now() - interval '1 day' - random() * interval '29 days'
                WHEN (i / 10) % :open_every = 0 THEN now() - random() * interval '10 minutes'
                ELSE now() - random() * interval '24 hours' END AS created_at,
           (20000 + random() * 160000 + CASE WHEN random() < 0.05 THEN 200000 ELSE 0 END)::bigint AS ms,
           CASE WHEN i % 10 = 0 AND (i / 10) % :open_every = 0
                THEN (CASE WHEN i % 20 = 0 THEN 'generating' ELSE 'pending' END)
                WHEN i % 100 < 88 THEN 'completed' WHEN i % 100 < 96 THEN 'failed' ELSE 'timeout' END AS status
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS i
) AS g
"""


SECONDARY_INDEXES = """
SELECT i.indexname, i.indexdef FROM pg_indexes i
WHERE i.tablename = 'video_requests'
  AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conname = i.indexname)
"""


async def load_busy_day(runtime: Runtime) -> None:
    """Bulk rows with the triggers off (as a restore would), then the rollups rebuilt from them."""
    from service.tracking.rollups import rebuild

    started = time.perf_counter()
    # Secondary indexes are built once after the load, far faster than kept row by row.
    async with sql_engine(runtime).begin() as conn:
        indexes = (await conn.execute(text(SECONDARY_INDEXES))).all()
        for name, _ in indexes:
            await conn.execute(text(f"DROP INDEX {name}"))
    for first in range(1, BUSY_TOTAL + 1, BUSY_CHUNK):
        last = min(BUSY_TOTAL, first + BUSY_CHUNK - 1)
        async with sql_engine(runtime).begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(
                text(BUSY_LOAD),
                {
                    "first": first,
                    "last": last,
                    "heavy_rows": HEAVY_ROWS,
                    "heavy_user": HEAVY_USER,
                    "open_every": BUSY_OPEN_EVERY,
                },
            )
        print(f"  loaded {last:,} of {BUSY_TOTAL:,} ({time.perf_counter() - started:.0f} s)", flush=True)
    async with sql_engine(runtime).begin() as conn:
        for _, definition in indexes:
            await conn.execute(text(definition))
    print(f"  indexes rebuilt ({time.perf_counter() - started:.0f} s)", flush=True)
    rebuilt_at = time.perf_counter()
    report = await rebuild(runtime.database)
    print(
        f"  rollups rebuilt from the rows in {time.perf_counter() - rebuilt_at:.1f} s ({report.buckets:,} rows)"
    )
    async with sql_engine(runtime).connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("video_requests", "request_rollups", "request_rollup_sketches", "stage_rollups"):
            await autocommit.execute(text(f"VACUUM ANALYZE {table}"))
        counts = (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE created_at >= now() - interval '24 hours'),"
                    " count(*) FILTER (WHERE status IN ('pending', 'generating')) FROM video_requests"
                )
            )
        ).one()
    print(
        f"loaded {BUSY_TOTAL:,} requests ({counts[0]:,} in the last 24 h, {counts[1]:,} open)"
        f" in {time.perf_counter() - started:.0f} s"
    )


async def terminal_write_cost(runtime: Runtime, with_trigger: bool) -> list[float]:
    """Milliseconds of the tracker's `complete` write, one session, with or without the rollup trigger."""
    t = runtime.tracker
    switch = "ENABLE" if with_trigger else "DISABLE"
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text(f"ALTER TABLE video_requests {switch} TRIGGER video_requests_rollups"))
    samples = []
    for i in range(TERMINAL_WRITES):
        created = await t.create_request(
            VideoRequest(user_id=f"bench_{i % 997}", guild_id="g", prompt=f"b {i}")
        )
        await t.start_request(created.id)
        began = time.perf_counter()
        await t.complete_request(created.id, [f"https://cdn/{i}.mp4"])
        samples.append((time.perf_counter() - began) * 1000)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("ALTER TABLE video_requests ENABLE TRIGGER video_requests_rollups"))
    return samples


TERMINAL_BATCH = 5000
GENERATING_BATCH = """
INSERT INTO video_requests (id, correlation_id, user_id, prompt, status, created_at, started_at)
SELECT gen_random_uuid(), 'vvd_1600000000000_' || lpad(to_hex(i), 8, '0'), :user_id, 'terminal',
       'generating', now() - random() * interval '24 hours', now() - interval '3 minutes'
FROM generate_series(CAST(:first AS integer), CAST(:first AS integer) + CAST(:n AS integer) - 1) AS i
"""
FINISH_BATCH = """
UPDATE video_requests SET status = 'completed', completed_at = now(),
       duration_ms = (20000 + random() * 160000)::bigint
WHERE user_id = :user_id AND status = 'generating'
"""


async def terminal_update_cost(runtime: Runtime, with_trigger: bool, first: int) -> float:
    """Microseconds per row of one UPDATE making TERMINAL_BATCH requests terminal: the database's
    own cost of the terminal write, without the round trip and commit that dwarf it."""
    user_id = f"terminal_{first}"
    switch = "ENABLE" if with_trigger else "DISABLE"
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text(GENERATING_BATCH), {"user_id": user_id, "first": first, "n": TERMINAL_BATCH})
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text(f"ALTER TABLE video_requests {switch} TRIGGER video_requests_rollups"))
    async with sql_engine(runtime).begin() as conn:
        began = time.perf_counter()
        await conn.execute(text(FINISH_BATCH), {"user_id": user_id})
        elapsed = time.perf_counter() - began
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("ALTER TABLE video_requests ENABLE TRIGGER video_requests_rollups"))
    return elapsed / TERMINAL_BATCH * 1e6


async def run_busy_day(runtime: Runtime) -> None:
    await load_busy_day(runtime)
    q = runtime.queries
    print("reads (rollups; exact=true scans the window's rows):")
    report("dashboard 24 h, rollups", await timed(q.dashboard, 200), 20, 500)
    report("dashboard 24 h, exact", await timed(lambda: q.dashboard(exact=True), 10), 20, 500)
    report("hourly metrics 24 h, rollups", await timed(q.hourly_metrics, 200), 30, 500)
    report("hourly metrics 24 h, exact", await timed(lambda: q.hourly_metrics(exact=True), 5), 30, 500)
    report("dashboard 7 d, rollups", await timed(lambda: q.dashboard(window_hours=168), 100), 20, 500)
    report(
        "user history, first page (20)",
        await timed(lambda: q.user_history(HEAVY_USER, limit=20), 500),
        2,
        100,
    )
    print(f"terminal write (tracker complete, one session, {TERMINAL_WRITES} each):")
    without = await terminal_write_cost(runtime, with_trigger=False)
    with_rollups = await terminal_write_cost(runtime, with_trigger=True)
    print(
        f"  without rollup trigger  p50 {pct(without, 0.5):6.2f} ms   p99 {pct(without, 0.99):6.2f} ms\n"
        f"  with rollup trigger     p50 {pct(with_rollups, 0.5):6.2f} ms   p99 {pct(with_rollups, 0.99):6.2f} ms"
    )
    print(f"terminal UPDATE in the database ({TERMINAL_BATCH} rows in one statement, per row):")
    bare = await terminal_update_cost(runtime, with_trigger=False, first=1)
    rolled = await terminal_update_cost(runtime, with_trigger=True, first=1 + TERMINAL_BATCH)
    print(f"  without rollup trigger  {bare:7.1f} us\n  with rollup trigger     {rolled:7.1f} us")


def test_bench_busy_day() -> None:
    """Prints the busy-day figures (REELTRACE_BENCH_BUSY_TOTAL requests); asserts nothing about time."""
    configure_logging("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    root = Path(tempfile.mkdtemp(prefix="reeltrace-bench-busy-"))
    cluster = PgCluster(root, durable=True)
    try:
        url = cluster.url(cluster.new_database(from_template=False))
        from service.db import migrate

        migrate.upgrade(url)
        settings = Settings(database_url=url, data_dir=root / "data", db_pool_size=4)

        async def main() -> None:
            runtime = Runtime.build(settings, url, source_service="bench")
            try:
                await run_busy_day(runtime)
            finally:
                await runtime.close()

        asyncio.run(main())
    finally:
        cluster.server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
