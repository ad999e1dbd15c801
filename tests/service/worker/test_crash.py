"""A worker process killed with SIGKILL mid-flight: another worker finishes its requests, once each."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from service.runtime import Runtime
from service.settings import Settings
from tests.support.pipelines import stage_names
from tests.support.sql import sql_engine
from tests.support.workers import count_events, submit, wait_for, wait_terminal

REPO = Path(__file__).resolve().parents[3]
REQUESTS = 50


def worker_env(settings: Settings, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELTRACE_", "OTEL_"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "REELTRACE_DATA_DIR": str(settings.data_dir),
            "REELTRACE_SIM_LATENCY_SECONDS": "2",
            "REELTRACE_SIM_JITTER_SECONDS": "0.5",
            "REELTRACE_POLL_INTERVAL_SECONDS": "0.2",
            "REELTRACE_RETRY_BASE_SECONDS": "0",
            "REELTRACE_LEASE_SECONDS": "2",
            "REELTRACE_HEARTBEAT_SECONDS": "0.5",
            "REELTRACE_WORKER_POLL_SECONDS": "0.1",
            "REELTRACE_WATCHDOG_INTERVAL_SECONDS": "1",
            "REELTRACE_METRICS_PORT": "0",
            "OTEL_SDK_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
    )
    return env


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`reeltrace worker` as a child process, its output in `log` (the child keeps its own handle)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli.main", "worker", *args],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def worker_warnings(root: Path) -> list[str]:
    """The workers' warning and error log lines, to explain a failure."""
    lines = []
    for log in sorted(root.glob("worker-*.log")):
        lines += [
            f"{log.name}: {line}" for line in log.read_text().splitlines() if '"level": "info"' not in line
        ]
    return lines[-40:]


async def column(runtime: Runtime, sql: str) -> list[tuple[object, ...]]:
    async with sql_engine(runtime).connect() as conn:
        return [tuple(r) for r in await conn.execute(text(sql))]


@pytest.mark.slow
async def test_killed_worker_is_resumed_without_duplicates(
    settings: Settings, runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    """After kill -9 of a worker with generations in flight, a new worker brings all 50 requests to a
    terminal status; no started generation is started again and no row or event is duplicated."""
    env = worker_env(settings, database_url)
    ids = await submit(runtime, REQUESTS)
    first = start_worker(env, tmp_path / "worker-1.log", "--concurrency", "20")
    second: subprocess.Popen[bytes] | None = None
    try:

        async def mid_flight() -> bool:
            assert first.poll() is None, (tmp_path / "worker-1.log").read_text()[-3000:]
            return await count_events(runtime, "operation_started") >= 25

        await wait_for(mid_flight, 40, "25 generations started")
        first.send_signal(signal.SIGKILL)
        first.wait(10)

        before = dict(
            await column(
                runtime, "SELECT id, operation_name FROM video_requests WHERE operation_name IS NOT NULL"
            )
        )
        in_flight = await column(
            runtime, "SELECT id FROM video_requests WHERE status = 'generating' AND lease_owner IS NOT NULL"
        )
        assert len(before) >= 25
        assert in_flight, "the kill must catch some requests mid-flight"

        second = start_worker(env, tmp_path / "worker-2.log")
        found = await wait_terminal(runtime, ids, 60)

        async def settled() -> bool:
            # Notifications run after the terminal status; a run cut off there is taken over.
            rest = await column(
                runtime,
                "SELECT count(*) FROM request_stages WHERE stage_name = 'notification'"
                " AND status NOT IN ('completed', 'skipped')",
            )
            return rest == [(0,)]

        await wait_for(settled, 30, "every notification stage done")
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0, (tmp_path / "worker-2.log").read_text()[-3000:]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)

    assert set(found.values()) == {"completed"}, (Counter(found.values()), worker_warnings(tmp_path))

    # Each generation that had started before the kill kept its operation: polled, not restarted.
    after = dict(await column(runtime, "SELECT id, operation_name FROM video_requests"))
    for rid, name in before.items():
        assert after[rid] == name
    with sqlite3.connect(Path(settings.data_dir) / "sim" / "operations.sqlite3") as db:
        started = Counter(r[0] for r in db.execute("SELECT request_id FROM operations"))
    assert started == {str(rid): 1 for rid in ids}, {k: n for k, n in started.items() if n != 1}

    # Nothing duplicated: one of each lifecycle event per request, one stage_started per attempt
    # and claim (an attempt cut off by the kill starts again under its number in the new claim).
    per_request = await column(
        runtime,
        "SELECT event_type, count(*), count(DISTINCT request_id) FROM request_events"
        " WHERE event_type IN ('request_created', 'request_started', 'operation_started', 'request_completed')"
        " GROUP BY 1",
    )
    assert sorted(per_request) == [
        ("operation_started", REQUESTS, REQUESTS),
        ("request_completed", REQUESTS, REQUESTS),
        ("request_created", REQUESTS, REQUESTS),
        ("request_started", REQUESTS, REQUESTS),
    ]
    repeated = await column(
        runtime,
        "SELECT request_id, stage_name, data->>'attempt', data->>'claim_generation' FROM request_events"
        " WHERE event_type = 'stage_started' GROUP BY 1, 2, 3, 4 HAVING count(*) > 1",
    )
    assert repeated == [], (repeated, worker_warnings(tmp_path))
    stage_rows = await column(
        runtime, "SELECT count(*), count(DISTINCT (request_id, stage_name)) FROM request_stages"
    )
    assert stage_rows == [(REQUESTS * len(stage_names("veo")), REQUESTS * len(stage_names("veo")))]
    # The killed worker's requests were taken over after their leases expired.
    resumed = await column(runtime, "SELECT count(*) FROM video_requests WHERE claims = 2")
    assert resumed[0][0] >= len(in_flight)
    assert await count_events(runtime, "request_resumed") >= len(in_flight)
    # Every run ended and released its lease before the surviving worker stopped.
    assert await column(runtime, "SELECT DISTINCT lease_owner FROM video_requests") == [(None,)]
