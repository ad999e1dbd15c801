"""Benchmark: the per-request cost of telemetry (tracing, metrics, logging on vs off).

Run: `python -m pytest tests/bench/bench_telemetry.py -s` (not part of the suite).
Each mode runs in its own process (a tracer provider is set once per process):
the full `veo` pipeline with zero simulated latency, one worker, the same number of
requests. "on" = every request traced, spans exported over OTLP/HTTP to a local
receiver, every metric recorded, JSON logs at info; "off" = SDK disabled, metrics
replaced by no-ops, logging at error. Modes alternate to spread machine noise; the
target is under 10% overhead.

For each mode it prints lifecycles/s, CPU per lifecycle split into the worker's (its
process's own accounting) and PostgreSQL's (the server's processes, see
`tests/bench/pgstats.py`), and for the traced modes the spans and OTLP bytes exported
per lifecycle. For the "on" mode it prints the statements per lifecycle from
`pg_stat_statements`: sent by the worker, and run inside PostgreSQL.

Both run on uvloop's event loop, as `reeltrace worker` does. To show where the cost
lies, variants run in the same rounds (BENCH_BREAKDOWN=0 skips them): "on, writes as
spans" (each tracking write a span of its own instead of an event on the current
span), "on, asyncio" and "off, asyncio" (the same pair on asyncio's own event loop,
compared with each other) and "on, 10% sampled"
(`OTEL_TRACES_SAMPLER=parentbased_traceidratio`, ratio 0.1: a request's trace is kept
whole or not at all).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.sql import sql_engine

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "400"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# mode -> (label, environment of its process); "on" and "off" are the measurement,
# the others only show where the cost of "on" lies.
MODES: dict[str, tuple[str, dict[str, str]]] = {
    "on": ("telemetry on", {}),
    "off": ("telemetry off", {"OTEL_SDK_DISABLED": "true"}),
}
if os.environ.get("BENCH_BREAKDOWN") != "0":
    MODES["on-spans"] = ("on, writes as spans", {})
    MODES["on-asyncio"] = ("on, asyncio", {})
    MODES["off-asyncio"] = ("off, asyncio", {"OTEL_SDK_DISABLED": "true"})
    MODES["on-sampled"] = (
        "on, 10% sampled",
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    )


class _Null:
    def __call__(self, *args: Any, **kwargs: Any) -> None: ...

    def labels(self, *args: Any, **kwargs: Any) -> _Null:
        return self

    def inc(self, *args: Any, **kwargs: Any) -> None: ...
    def dec(self, *args: Any, **kwargs: Any) -> None: ...
    def set(self, *args: Any, **kwargs: Any) -> None: ...
    def observe(self, *args: Any, **kwargs: Any) -> None: ...


class NullMetrics:
    """Every metric family (and method) of `telemetry.metrics.Metrics`, doing nothing."""

    def __getattr__(self, name: str) -> _Null:
        return _Null()


async def run_mode(mode: str, url: str, data_dir: Path, postmaster_pid: int) -> dict[str, Any]:
    from sqlalchemy import text

    from service.gc_tuning import settle_heap
    from service.runtime import Runtime
    from service.settings import Settings
    from service.video_request import VideoRequest
    from service.wiring import build_pipeline
    from service.worker.worker import Worker
    from telemetry import metrics as metrics_module
    from telemetry import tracing
    from telemetry.logging import configure_logging
    from telemetry.tracing import configure_tracing, shutdown_tracing
    from tests.bench.pgstats import postgres_cpu_seconds, reset_statements, statement_counts

    sink = open(os.devnull, "w")  # noqa: SIM115, ASYNC230 - lives for the process
    if mode.startswith("on"):
        configure_tracing("reeltrace-bench")
        if hasattr(tracing, "instrument_database"):  # a build that traces SQL at the driver
            tracing.instrument_database()
        try:  # tracking writes as spans of their own rather than events (measured against "on")
            from telemetry import database

            database.TRACKING_WRITES_AS_SPANS = mode == "on-spans"
        except ImportError:  # a build whose writes are SQL spans of the driver
            pass
        configure_logging("info", "json", stream=sink)
    else:
        metrics_module._metrics = NullMetrics()  # type: ignore[assignment]
        configure_logging("error", "json", stream=sink)
    settings = Settings(
        database_url=url,
        data_dir=data_dir,
        sim_latency_seconds=0,
        sim_jitter_seconds=0,
        poll_interval_seconds=0.01,
        worker_poll_seconds=0.01,
        worker_concurrency=50,
    )
    runtime = Runtime.build(settings, url, source_service="bench")
    services = build_pipeline(runtime)
    for i in range(REQUESTS):
        await runtime.tracker.create_request(VideoRequest(user_id=f"u{i % 50}", prompt=f"bench {i}"))
    worker = Worker(runtime, services.runner)
    settle_heap()  # as `reeltrace worker` does once started
    await asyncio.to_thread(reset_statements, url)
    stop = asyncio.Event()
    started = time.perf_counter()
    cpu_started = time.process_time()
    pg_started = postgres_cpu_seconds(postmaster_pid)
    task = asyncio.create_task(worker.run(stop))
    open_count = text("SELECT count(*) FROM video_requests WHERE status IN ('pending', 'generating')")
    while True:
        await asyncio.sleep(0.05)
        async with sql_engine(runtime).connect() as conn:
            if (await conn.execute(open_count)).scalar_one() == 0:
                break
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    pg_ms = (postgres_cpu_seconds(postmaster_pid) - pg_started) * 1000 / REQUESTS
    await services.aclose()
    await runtime.close()
    shutdown_tracing()  # flushes the last spans: their export is part of the cost
    cpu_ms = (time.process_time() - cpu_started) * 1000 / REQUESTS
    # The polling above is the benchmark's, not the worker's.
    statements = statement_counts(url, excluding=("count(*) FROM video_requests",))
    return {
        "rate": REQUESTS / elapsed,
        "cpu": cpu_ms,
        "pg_cpu": pg_ms,
        "statements": statements.summary(REQUESTS),
    }


def child(mode: str, url: str, data_dir: str, endpoint: str, postmaster_pid: str) -> None:
    os.environ.update(MODES[mode][1])
    if mode.startswith("on"):
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    loop_factory = None
    if not mode.endswith("asyncio"):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(run_mode(mode, url, Path(data_dir), int(postmaster_pid)))
    print("RESULT " + json.dumps(result))


def test_bench_telemetry_overhead() -> None:
    """Prints lifecycles/s with telemetry on and off, and the overhead."""
    from service.db import migrate
    from tests.bench.pgstats import enable_statements
    from tests.support.otlp_receiver import otlp_receiver
    from tests.support.pg import PgCluster

    root = Path(tempfile.mkdtemp(prefix="reeltrace-bench-tel-"))
    cluster = PgCluster(root, stat_statements=True)
    cluster.create_template()
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpus: dict[str, list[float]] = {mode: [] for mode in MODES}
    pg_cpus: dict[str, list[float]] = {mode: [] for mode in MODES}
    spans: dict[str, int] = dict.fromkeys(MODES, 0)
    otlp_bytes: dict[str, int] = dict.fromkeys(MODES, 0)
    statements: list[str] = []
    try:
        with otlp_receiver() as receiver:
            for _ in range(ROUNDS):
                for mode in MODES:
                    before, bytes_before = len(receiver.snapshot()), receiver.bytes_received
                    url = cluster.url(cluster.new_database())
                    migrate.upgrade(url)
                    enable_statements(url)
                    # BENCH_PROFILE=<dir>: each run under py-spy (samples holding the GIL), as
                    # collapsed stacks in <dir>/<mode>.txt, to see where its CPU goes.
                    profile = os.environ.get("BENCH_PROFILE")
                    spy = ["py-spy", "record", "--gil", "--rate", "250", "--format", "raw", "-o"]
                    spy = [*spy, str(Path(profile) / f"{mode}.txt"), "--"] if profile else []
                    out = subprocess.run(
                        [
                            *spy,
                            sys.executable,
                            __file__,
                            mode,
                            url,
                            str(root / f"data-{mode}"),
                            receiver.endpoint,
                            str(cluster.postmaster_pid),
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
                    )
                    [line] = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
                    result = json.loads(line.removeprefix("RESULT "))
                    rates[mode].append(result["rate"])
                    cpus[mode].append(result["cpu"])
                    pg_cpus[mode].append(result["pg_cpu"])
                    spans[mode] += len(receiver.snapshot()) - before
                    otlp_bytes[mode] += receiver.bytes_received - bytes_before
                    if mode == "on":
                        statements.append(result["statements"])
    finally:
        cluster.server.cleanup()
        shutil.rmtree(root, ignore_errors=True)

    def median(values: list[float]) -> float:
        return sorted(values)[ROUNDS // 2]

    off, cpu_off = median(rates["off"]), median(cpus["off"])
    print(f"\ntelemetry overhead, {REQUESTS} veo lifecycles per run, median of {ROUNDS} alternating runs:")
    lifecycles = REQUESTS * ROUNDS
    for mode, (label, _) in MODES.items():
        rate, cpu, pg_cpu = median(rates[mode]), median(cpus[mode]), median(pg_cpus[mode])
        line = f"  {label:<20}: {rate:7.1f} lifecycles/s, CPU each: worker {cpu:6.2f} ms"
        base = median(cpus["off-asyncio"]) if mode == "on-asyncio" else cpu_off
        if not mode.startswith("off"):
            line += f" ({cpu - base:+.2f} ms, {(cpu / base - 1) * 100:+.1f}%)"
        line += f" + PostgreSQL {pg_cpu:5.2f} ms"
        if not mode.startswith("off"):
            line += (
                f"; {spans[mode] / lifecycles:.1f} spans, "
                f"{otlp_bytes[mode] / lifecycles / 1024:.1f} KiB OTLP per lifecycle"
            )
        print(f"{line}   runs {[round(r, 1) for r in rates[mode]]}")
    on, cpu_on = median(rates["on"]), median(cpus["on"])
    # CPU per lifecycle (all threads, the exporter's included) is steadier than wall
    # time on a shared machine; both are shown.
    print(
        f"  cost per request: {cpu_on - cpu_off:+.2f} ms CPU ({(cpu_on / cpu_off - 1) * 100:+.1f}%), "
        f"{1000 / on - 1000 / off:+.2f} ms wall ({(off / on - 1) * 100:+.1f}%); target < 10%"
    )
    print("telemetry on, pg_stat_statements (last round):")
    print(statements[-1])
    assert spans["on"] > 0


if __name__ == "__main__":
    child(*sys.argv[1:6])
