"""Benchmark: submissions through `POST /api/v1/requests` against a bare baseline.

Run: `python -m pytest tests/bench/bench_api.py -s` (not part of the suite). Prints,
for each server, submissions per second, the p50/p99 latency of the POST, and the CPU
per submission of the server process and of PostgreSQL (each from its processes' own
accounting, over the whole round, warm-up included):

- reeltrace: the real `reeltrace serve --no-worker` in its own process, with API
  keys checked, the per-user rate limit counted in PostgreSQL (distinct users, so
  none is refused), tracing on (every span exported over OTLP/HTTP to a local
  receiver), metrics recorded and JSON logs at info written to a file;
- baseline: a bare FastAPI app in its own process (same uvicorn, same pool, and the
  same way of running a statement: one autocommit statement on the psycopg_pool
  connection pool, `service.db.database.Database`) whose endpoint validates a small
  body and does one INSERT into `video_requests`, with no telemetry at all;

and the ratio (target: at least 0.5). To show where the gap lies, the same server
also runs with traces sampled at 10% (`OTEL_TRACES_SAMPLER=parentbased_traceidratio`),
with tracing off (`OTEL_SDK_DISABLED=true`) and with tracing off and logs at error
level, each with its own ratio (BENCH_BREAKDOWN=0 skips them). Both use one PostgreSQL with its default
durability (fsync on), on the same machine, and are driven identically by a load
generator in a third process: CONCURRENCY keep-alive connections for SECONDS after
a warm-up. The generator speaks HTTP/1.1 over asyncio streams itself, so that it
costs far less CPU per request than the servers it measures (the machine has two
shared cores). Servers alternate over ROUNDS; the best round of each is reported.
BENCH_SECONDS, BENCH_CONCURRENCY and BENCH_ROUNDS change the run; BENCH_REELTRACE_ENV
(a JSON object) adds environment variables to the reeltrace server, to isolate the
cost of one component.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

REPO = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
WARMUP = 2.0
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
# The same reeltrace server with parts of its telemetry off (metrics stay on: they
# are in-process counters, and the API serves them regardless).
BREAKDOWN: dict[str, dict[str, str]] = (
    {}
    if os.environ.get("BENCH_BREAKDOWN") == "0"
    else {
        "10% sampled": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
        "no tracing": {"OTEL_SDK_DISABLED": "true"},
        "no traces, logs": {"OTEL_SDK_DISABLED": "true", "REELTRACE_LOG_LEVEL": "error"},
    }
)
# The benchmark's PostgreSQL, whose CPU is read around each round (set by the driver).
POSTMASTER_PID = [0]
PROMPT = "A red fox running through fresh snow at dawn, cinematic, slow motion"


# --- the bare baseline (run as: bench_api.py baseline <database url> <port>) ---------


class BaselineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=64)
    guild_id: str | None = Field(default=None, max_length=64)
    prompt: str = Field(min_length=1, max_length=2000)


def run_baseline(url: str, port: int) -> None:
    import uuid

    import uvicorn
    from fastapi import FastAPI

    from service.db.database import Database
    from service.settings import Settings
    from telemetry.correlation import new_correlation_id

    settings = Settings(database_url=url)
    database = Database.from_settings(
        url, settings.db_pool_size, settings.db_max_overflow, application_name="bench-baseline"
    )
    insert = (
        "INSERT INTO video_requests (id, correlation_id, user_id, guild_id, prompt) "
        "VALUES (%(id)s, %(correlation_id)s, %(user_id)s, %(guild_id)s, %(prompt)s)"
    )

    app = FastAPI()

    @app.post("/api/v1/requests", status_code=202)
    async def submit(body: BaselineBody) -> dict[str, str]:
        rid = uuid.uuid4()
        params = {
            "id": rid,
            "correlation_id": new_correlation_id(),
            "user_id": body.user_id,
            "guild_id": body.guild_id,
            "prompt": body.prompt,
        }
        await database.execute(insert, params, traced=False)
        return {"id": str(rid), "status": "pending"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


# --- the load generator (run as: bench_api.py load <port> <key> <tag>) ------------------


async def _connection(
    port: int, key: str, tag: str, worker: int, until: float, warm: float, sent: list[int]
) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies: list[float] = []
    i = 0
    try:
        while (now := time.perf_counter()) < until:
            body = json.dumps(
                {"user_id": f"{tag}-{worker}-{i}", "guild_id": f"g{i % 50}", "prompt": PROMPT}
            ).encode()
            head = (
                f"POST /api/v1/requests HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            writer.write(head + body)
            await writer.drain()
            status_and_headers = await reader.readuntil(b"\r\n\r\n")
            status = int(status_and_headers.split(b" ", 2)[1])
            length = 0
            for line in status_and_headers.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status != 202:
                raise RuntimeError(f"status {status}")
            if now >= warm:
                latencies.append(time.perf_counter() - now)
            i += 1
            sent[0] += 1
    finally:
        writer.close()
    return latencies


async def _load(port: int, key: str, tag: str) -> dict[str, float]:
    start = time.perf_counter()
    warm = start + WARMUP
    until = warm + SECONDS
    sent = [0]
    results = await asyncio.gather(
        *(_connection(port, key, tag, w, until, warm, sent) for w in range(CONCURRENCY)),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    latencies = sorted(x for r in results if not isinstance(r, BaseException) for x in r)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 100 else [float("nan")] * 99
    return {
        "requests": len(latencies),
        "sent": sent[0],
        "per_second": len(latencies) / SECONDS,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "failed_connections": len(errors),
        "first_error": str(errors[0]) if errors else "",
    }


def run_load(port: int, key: str, tag: str) -> None:
    print(json.dumps(asyncio.run(_load(port, key, tag))))


# --- the driver ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drive(port: int, key: str, tag: str, server_pid: int) -> dict[str, float]:
    from tests.bench.pgstats import postgres_cpu_seconds

    cpu_before = _cpu_seconds(server_pid)
    pg_before = postgres_cpu_seconds(POSTMASTER_PID[0])
    out = subprocess.run(
        [sys.executable, __file__, "load", str(port), key, tag],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=_env({}),
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    # Warm-up requests included: the whole run's server CPU over the whole run's requests.
    result["server_cpu_ms"] = (_cpu_seconds(server_pid) - cpu_before) * 1000 / max(result["sent"], 1)
    result["pg_cpu_ms"] = (
        (postgres_cpu_seconds(POSTMASTER_PID[0]) - pg_before) * 1000 / max(result["sent"], 1)
    )
    if result["failed_connections"]:
        raise RuntimeError(
            f"{tag}: {result['failed_connections']} connections failed: {result['first_error']}"
        )
    return result


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELTRACE_", "OTEL_", "DATABASE_URL"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _round_baseline(url: str, root: Path, tag: str) -> dict[str, float]:
    port = _free_port()
    log = root / f"{tag}.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, __file__, "baseline", url, str(port)],
            env=_env({}),
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(port, proc, log)
        return _drive(port, "unused", tag, proc.pid)
    finally:
        _stop(proc)


def _round_reeltrace(
    url: str, root: Path, key: str, endpoint: str, tag: str, variant: dict[str, str] | None = None
) -> dict[str, Any]:
    import httpx

    port = _free_port()
    log = root / f"{tag}.log"
    env = _env(
        {
            "DATABASE_URL": url,
            "REELTRACE_DATA_DIR": str(root / "data"),
            "REELTRACE_LOG_LEVEL": "info",
            "REELTRACE_LOG_FORMAT": "json",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": "reeltrace-bench",
            # e.g. {"OTEL_SDK_DISABLED": "true"} to see what a component costs.
            **json.loads(os.environ.get("BENCH_REELTRACE_ENV", "{}")),
            **(variant or {}),
        }
    )
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli.main", "serve", "--no-worker", "--port", str(port)],
            env=env,
            cwd=root,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(port, proc, log)
        # BENCH_PROFILE=<dir>: the server under py-spy meanwhile (samples holding the GIL),
        # as collapsed stacks in <dir>/<tag>.txt, to see where its CPU goes.
        profile = os.environ.get("BENCH_PROFILE")
        spy = None
        if profile:
            command = [
                "py-spy",
                "record",
                "--pid",
                str(proc.pid),
                "--gil",
                "--rate",
                "250",
                "--format",
                "raw",
            ]
            command += ["--duration", str(int(WARMUP + SECONDS)), "-o", str(Path(profile) / f"{tag}.txt")]
            spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result: dict[str, Any] = dict(_drive(port, key, tag, proc.pid))
        if spy is not None:
            spy.wait(60)
        scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        result["metric_created"] = sum(
            float(line.rsplit(" ", 1)[1])
            for line in scrape.splitlines()
            if line.startswith("reeltrace_requests_created_total{")
        )
    finally:
        _stop(proc)
    result["log_lines"] = sum(1 for line in log.read_text().splitlines() if '"request_created"' in line)
    return result


def _print(name: str, r: dict[str, Any]) -> None:
    print(
        f"   {name:<15} {r['per_second']:8.0f} submissions/s   p50 {r['p50_ms']:6.1f} ms   "
        f"p99 {r['p99_ms']:6.1f} ms   CPU per submission: app {r['server_cpu_ms']:.2f} ms"
        f" + PostgreSQL {r['pg_cpu_ms']:.2f} ms   ({r['requests']:.0f} requests)"
    )


def test_bench_api() -> None:
    """Prints the figures; asserts only that the runs did what they claim (not their speed)."""
    from service.auth.keys import create_key
    from service.auth.repository import ApiKeyRepository
    from service.db import migrate
    from service.runtime import Runtime
    from service.settings import Settings
    from tests.support.otlp_receiver import otlp_receiver
    from tests.support.pg import PgCluster

    root = Path(tempfile.mkdtemp(prefix="reeltrace-bench-api-"))
    cluster = PgCluster(root, durable=True)
    POSTMASTER_PID[0] = cluster.postmaster_pid
    try:
        urls = {}
        for name in ("reeltrace", "baseline"):
            urls[name] = cluster.url(cluster.new_database(from_template=False))
            migrate.upgrade(urls[name])

        async def make_key() -> str:
            settings = Settings(database_url=urls["reeltrace"], data_dir=root / "data")
            runtime = Runtime.build(settings, urls["reeltrace"], source_service="bench")
            try:
                return (await create_key(ApiKeyRepository(runtime.database), "bench", ["submit"])).key
            finally:
                await runtime.close()

        key = asyncio.run(make_key())
        print(
            f"\nmachine: {os.cpu_count()} cores, shared by PostgreSQL (fsync on), the server and the "
            f"load generator; {CONCURRENCY} connections, {SECONDS:.0f} s per round after {WARMUP:.0f} s warm-up"
        )
        baseline: list[dict[str, Any]] = []
        ours: list[dict[str, Any]] = []
        parts: dict[str, list[dict[str, Any]]] = {name: [] for name in BREAKDOWN}
        spans = 0
        with otlp_receiver() as receiver:
            for n in range(ROUNDS):
                baseline.append(_round_baseline(urls["baseline"], root, f"baseline-{n}"))
                before = len(receiver.snapshot())
                ours.append(
                    _round_reeltrace(urls["reeltrace"], root, key, receiver.endpoint, f"reeltrace-{n}")
                )
                spans += len(receiver.snapshot()) - before  # a stopped server has flushed its spans
                for name, variant in BREAKDOWN.items():
                    tag = f"{name.replace(' ', '-').replace(',', '')}-{n}"
                    parts[name].append(
                        _round_reeltrace(urls["reeltrace"], root, key, receiver.endpoint, tag, variant)
                    )
        for n in range(ROUNDS):
            print(f"round {n + 1}:")
            _print("baseline", baseline[n])
            _print("reeltrace", ours[n])
            for name, results in parts.items():
                _print(name, results[n])
        best_base = max(baseline, key=lambda r: r["per_second"])
        best_ours = max(ours, key=lambda r: r["per_second"])
        total = sum(r["requests"] for r in ours)
        print("best round of each:")
        _print("baseline", best_base)
        _print("reeltrace", best_ours)
        print(
            f"   ratio reeltrace / baseline: {best_ours['per_second'] / best_base['per_second']:.2f} "
            f"(target >= 0.50); p99 {best_ours['p99_ms']:.1f} ms vs {best_base['p99_ms']:.1f} ms"
        )
        print(
            f"   telemetry during the reeltrace rounds: {spans} spans received over OTLP, "
            f"{sum(r['log_lines'] for r in ours)} request_created log lines, "
            f"reeltrace_requests_created_total {sum(r['metric_created'] for r in ours):.0f}"
        )
        if BREAKDOWN:
            print("where the gap lies (reeltrace with parts of its telemetry off, best round of each):")
            for name, results in parts.items():
                best = max(results, key=lambda r: r["per_second"])
                _print(name, best)
                print(f"   {'':<15} ratio {best['per_second'] / best_base['per_second']:.2f}")
        assert spans > 0
        assert sum(r["log_lines"] for r in ours) >= total
        assert sum(r["metric_created"] for r in ours) >= total
    finally:
        cluster.server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "baseline":
        run_baseline(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "load":
        run_load(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        test_bench_api()
