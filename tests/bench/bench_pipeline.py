"""Benchmark: the pipeline and the worker.

Run: `python -m pytest tests/bench/bench_pipeline.py -s` (not part of the suite), or
`python -m tests.bench.bench_pipeline`. Prints:

1. lifecycles per second through the whole `veo` pipeline (validation, generation,
   processing, notification skipped) with zero simulated latency, one in-process
   worker with all telemetry on (every request traced, spans exported over OTLP/HTTP
   to a local receiver, JSON logs at info), timed from the first request started to
   the last one completed; the CPU per lifecycle of the worker's process and of
   PostgreSQL (`tests/bench/pgstats.py`), and the OTLP bytes per lifecycle;
2. database writes per lifecycle, counted three ways: statements the worker sent
   (counted at psycopg's cursor, so statements sent through SQLAlchemy and those sent
   on the pooled connection directly both count: one tracking write is one
   statement and one round trip), `pg_stat_statements` (statements sent, and those
   run inside PostgreSQL on their behalf), and rows PostgreSQL inserted or updated
   (`pg_stat_user_tables` n_tup_ins / n_tup_upd deltas);
3. the RSS of one `reeltrace worker` process holding 1,000 simulated generations in
   flight (polling every 10 s, the default), and its CPU use meanwhile.

PostgreSQL runs with its default durability (fsync on), on the same machine.
BENCH_LIFECYCLES and BENCH_IN_FLIGHT change the counts (for a quick try).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import psycopg
from sqlalchemy import text

from service.db import migrate
from service.runtime import Runtime
from service.settings import Settings
from service.video_request import VideoRequest
from service.wiring import build_pipeline
from service.worker.worker import Worker
from telemetry import tracing
from telemetry.logging import configure_logging
from tests.bench.pgstats import enable_statements, postgres_cpu_seconds, reset_statements, statement_counts
from tests.support.otlp_receiver import OtlpReceiver, otlp_receiver
from tests.support.pg import PgCluster
from tests.support.sql import sql_engine
from tests.support.workers import wait_for

REPO = Path(__file__).resolve().parents[2]
LIFECYCLES = int(os.environ.get("BENCH_LIFECYCLES", "1000"))
WARMUP = 50
IN_FLIGHT = int(os.environ.get("BENCH_IN_FLIGHT", "1000"))
WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


async def submit(runtime: Runtime, n: int, prefix: str) -> None:
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with sem:
            await runtime.tracker.create_request(
                VideoRequest(user_id=f"{prefix}-{i % 50}", prompt=f"bench {i}")
            )

    await asyncio.gather(*(one(i) for i in range(n)))


async def count(runtime: Runtime, sql: str) -> Any:
    async with sql_engine(runtime).connect() as conn:
        return (await conn.execute(text(sql))).scalar_one()


async def table_writes(runtime: Runtime) -> dict[str, int]:
    async with sql_engine(runtime).connect() as conn:
        rows = await conn.execute(
            text("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables")
        )
        return {name: int(n) for name, n in rows}


async def run_worker_until_done(runtime: Runtime, observer: Runtime) -> float:
    """Run one worker until every request is completed and it is idle; returns wall seconds.

    The bench watches through `observer`'s engine, so it takes none of the worker's connections.
    """
    services = build_pipeline(runtime)
    worker = Worker(runtime, services.runner, worker_id="bench")
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(worker.run(stop))
    try:

        async def all_completed() -> bool:
            return (
                await count(observer, "SELECT count(*) FROM video_requests WHERE status <> 'completed'") == 0
            )

        async def idle() -> bool:
            return not worker.active

        await wait_for(all_completed, 600, "all completed")
        await wait_for(idle, 60, "worker idle")
        return time.perf_counter() - started
    finally:
        stop.set()
        await task
        await services.aclose()


async def throughput(settings: Settings, url: str, postmaster_pid: int, receiver: OtlpReceiver) -> None:
    runtime = Runtime.build(settings, url, source_service="bench")
    observer = Runtime.build(settings, url, source_service="bench-observer")
    try:
        await submit(runtime, WARMUP, "warm")
        await run_worker_until_done(runtime, observer)
        await submit(runtime, LIFECYCLES, "bench")
        await runtime.database.reset()  # the submitters' backends flush their statistics
        await asyncio.sleep(1.5)
        rows_before = await table_writes(runtime)

        statements: Counter[str] = Counter()
        counting = [False]
        original_execute = psycopg.AsyncCursor.execute

        # Counted at the driver, where every statement passes: those sent through
        # SQLAlchemy and those sent on the pooled connection directly alike.
        async def counted_execute(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            # The observer's polling is not the worker's work.
            worker_connection = (
                cursor.connection.info.parameter_status("application_name") == "reeltrace-bench"
            )
            if counting[0] and worker_connection:
                statement = str(query)
                if "request_events" in statement and WRITE.search(statement):
                    statements["tracking"] += 1  # every tracking write inserts its events
                elif "lease_expires_at" in statement and WRITE.search(statement):
                    statements["queue"] += 1  # claim, heartbeat, release, renewal
                elif WRITE.search(statement):
                    statements["sweep"] += 1  # the webhook and retention sweeps
                else:
                    statements["read"] += 1
            return await original_execute(cursor, query, *args, **kwargs)

        psycopg.AsyncCursor.execute = counted_execute  # type: ignore[method-assign]
        await asyncio.to_thread(reset_statements, url)
        try:
            counting[0] = True
            otlp_before = receiver.bytes_received
            cpu_started = time.process_time()
            pg_started = postgres_cpu_seconds(postmaster_pid)
            wall = await run_worker_until_done(runtime, observer)
            cpu = time.process_time() - cpu_started
            pg_cpu = postgres_cpu_seconds(postmaster_pid) - pg_started
            counting[0] = False
        finally:
            psycopg.AsyncCursor.execute = original_execute  # type: ignore[method-assign]

        async with sql_engine(runtime).connect() as conn:
            first, last, done = (
                await conn.execute(
                    text(
                        "SELECT min(started_at), max(completed_at), count(*) FROM video_requests"
                        " WHERE user_id LIKE 'bench-%' AND status = 'completed'"
                    )
                )
            ).one()
        # The benchmark's own polling and reads are left out.
        counted = statement_counts(url, excluding=("count(*) FROM video_requests", "min(started_at)"))
        await runtime.database.reset()
        await asyncio.sleep(1.5)
        rows_after = await table_writes(runtime)
    finally:
        await observer.close()
        await runtime.close()
    if tracing._provider is not None:
        tracing._provider.force_flush()  # the spans of the run, exported
    otlp_bytes = receiver.bytes_received - otlp_before

    journaled = runtime.journal.pending_count()
    span = (last - first).total_seconds()
    rows = {t: rows_after.get(t, 0) - rows_before.get(t, 0) for t in rows_after}
    print(f"\n1. veo lifecycles, zero simulated latency, 1 worker in-process ({done} requests):")
    print(f"   {done / span:8.1f} lifecycles/s  (first started -> last completed: {span:.2f} s)")
    print(f"   {done / wall:8.1f} lifecycles/s  (worker start -> worker idle, all included: {wall:.2f} s)")
    print(
        f"   CPU per lifecycle: worker process {cpu / done * 1000:.2f} ms + PostgreSQL {pg_cpu / done * 1000:.2f} ms"
        " (steadier than wall time on a shared machine)"
    )
    print(f"   OTLP exported: {otlp_bytes / done / 1024:.1f} KiB per lifecycle")
    print(f"   tracking writes that fell back to the journal: {journaled}")
    per = {k: v / done for k, v in statements.items()}
    print("\n2. database writes per lifecycle (create excluded; it is the API's, 1 statement):")
    print(
        f"   statements sent by the worker: {per.get('tracking', 0):.1f} tracking writes"
        f" + {per.get('queue', 0):.2f} lease writes (claim/heartbeat/release/renewal)"
        f" + {per.get('sweep', 0):.2f} sweeps + {per.get('read', 0):.1f} reads"
    )
    print(counted.summary(done))
    touched = {t: n / done for t, n in rows.items() if n}
    print(
        f"   rows inserted/updated in PostgreSQL: {sum(touched.values()):.1f} = "
        + ", ".join(f"{t} {n:.1f}" for t, n in sorted(touched.items()))
    )


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli.main", "worker", "--concurrency", str(IN_FLIGHT)],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def resident_worker(settings: Settings, url: str, root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELTRACE_", "OTEL_"))}
    env.update(
        {
            "DATABASE_URL": url,
            "REELTRACE_DATA_DIR": str(root / "worker-data"),
            "REELTRACE_SIM_LATENCY_SECONDS": "3600",
            "REELTRACE_SIM_JITTER_SECONDS": "0",
            "REELTRACE_POLL_INTERVAL_SECONDS": "10",
            "REELTRACE_WORKER_POLL_SECONDS": "0.2",
            "REELTRACE_METRICS_PORT": "0",
            "REELTRACE_LOG_LEVEL": "warning",
            "OTEL_SDK_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
    )
    runtime = Runtime.build(settings, url, source_service="bench")
    log = root / "worker.log"
    proc = spawn_worker(env, log)
    ps = psutil.Process(proc.pid)
    try:
        await asyncio.sleep(4)
        idle_rss = ps.memory_info().rss
        await submit(runtime, IN_FLIGHT, "resident")
        deadline = time.monotonic() + 180
        while await count(
            runtime, "SELECT count(*) FROM request_events WHERE event_type = 'operation_started'"
        ) < (IN_FLIGHT):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start {IN_FLIGHT} generations: {log.read_text()[-2000:]}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        ps.cpu_percent()
        samples = []
        for _ in range(20):  # two full poll cycles
            await asyncio.sleep(1)
            samples.append(ps.memory_info().rss)
        cpu = ps.cpu_percent()
        generating = await count(runtime, "SELECT count(*) FROM video_requests WHERE status = 'generating'")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        await runtime.close()
    mib = 1024 * 1024
    print(f"\n3. one worker process holding {generating} simulated generations in flight (poll every 10 s):")
    print(f"   RSS idle {idle_rss / mib:.0f} MiB -> in flight {max(samples) / mib:.0f} MiB (max of 20 s)")
    print(f"   = {(max(samples) - idle_rss) / generating / 1024:.0f} KiB per in-flight generation")
    print(f"   CPU while polling: {cpu:.0f}% of one core")


def test_bench_pipeline() -> None:
    """Prints the figures; asserts nothing about time (benchmarks are not tests of speed)."""
    configure_logging("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    root = Path(tempfile.mkdtemp(prefix="reeltrace-bench-"))
    cluster = PgCluster(root, durable=True, stat_statements=True)
    receiver_context = otlp_receiver()
    receiver = receiver_context.__enter__()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    os.environ.pop("OTEL_SDK_DISABLED", None)
    tracing.configure_tracing("reeltrace-bench")
    if hasattr(tracing, "instrument_database"):  # a build that traces SQL at the driver
        tracing.instrument_database()
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"\nmachine: {os.cpu_count()} cores, shared (load average {load}); PostgreSQL fsync on, same machine"
        )
        url = cluster.url(cluster.new_database(from_template=False))
        migrate.upgrade(url)
        enable_statements(url)
        settings = Settings(
            database_url=url,
            data_dir=root / "data",
            sim_latency_seconds=0,
            sim_jitter_seconds=0,
            poll_interval_seconds=0.01,
            worker_poll_seconds=0.05,
        )
        asyncio.run(throughput(settings, url, cluster.postmaster_pid, receiver))
        url2 = cluster.url(cluster.new_database(from_template=False))
        migrate.upgrade(url2)
        asyncio.run(resident_worker(settings.model_copy(update={"database_url": url2}), url2, root))
    finally:
        tracing.shutdown_tracing()
        receiver_context.__exit__(None, None, None)
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        cluster.server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    test_bench_pipeline()
