"""A PostgreSQL outage longer than the lease: the request is taken over, and the first owner stops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from service.errors import DatabaseUnavailable
from service.pipeline.run_state import WorkItem
from service.runtime import Runtime
from service.settings import Settings
from service.worker.repository import WorkRepository
from tests.service.worker.test_crash import start_worker, worker_env
from tests.support.pg import PgCluster
from tests.support.sql import sql_engine
from tests.support.workers import count_events, running_worker, submit, wait_for, wait_idle, wait_terminal

REQUESTS = 4
LEASE_SECONDS = 2.0


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A cluster this test may stop and start without disturbing the others."""
    root = Path(tempfile.mkdtemp(prefix="reeltrace-pg-takeover-"))
    cluster = PgCluster(root)
    cluster.create_template()
    yield cluster
    cluster.server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def polls(settings: Settings) -> dict[str, int]:
    """Polls per request, as the simulated backend itself recorded them."""
    with sqlite3.connect(Path(settings.data_dir) / "sim" / "operations.sqlite3") as db:
        return {r[0]: r[1] for r in db.execute("SELECT request_id, polls FROM operations")}


def starts(settings: Settings) -> dict[str, int]:
    with sqlite3.connect(Path(settings.data_dir) / "sim" / "operations.sqlite3") as db:
        return {r[0]: r[1] for r in db.execute("SELECT request_id, count(*) FROM operations GROUP BY 1")}


@pytest.mark.slow
async def test_outage_longer_than_the_lease_fences_out_the_first_owner(
    own_cluster: PgCluster, tmp_path: Path
) -> None:
    """After an outage longer than the lease, a second worker takes the requests over; the first
    worker's writes (lease renewals) are refused, it polls the backend no more, and the takeover
    resumes the generation attempt instead of counting a retry."""
    url = own_cluster.url(own_cluster.new_database())
    settings = Settings(
        database_url=url, data_dir=tmp_path / "data", sim_latency_seconds=0, poll_interval_seconds=0.05
    )
    rt = Runtime.build(settings, url, source_service="test")
    env = worker_env(settings, url)
    env.update(
        {
            "REELTRACE_SIM_LATENCY_SECONDS": "15",
            "REELTRACE_POLL_INTERVAL_SECONDS": "0.1",
            "REELTRACE_LEASE_SECONDS": str(LEASE_SECONDS),
            # A slow heartbeat: without the fence, runs poll on until it notices.
            "REELTRACE_HEARTBEAT_SECONDS": "1.5",
            "REELTRACE_WATCHDOG_INTERVAL_SECONDS": "3600",
        }
    )
    log = tmp_path / "worker-a.log"
    first = start_worker(env, log)
    try:
        ids = await submit(rt, REQUESTS)

        async def generating() -> bool:
            assert first.poll() is None, log.read_text()[-3000:]
            return await count_events(rt, "operation_started") == REQUESTS

        await wait_for(generating, 40, "generations started")

        # The outage: PostgreSQL stops; the first worker runs on (degraded), then stalls, so
        # the outage outlasts its leases and the second worker gets there first once it ends.
        own_cluster.stop()
        await asyncio.sleep(0.5)
        os.kill(first.pid, signal.SIGSTOP)
        await asyncio.sleep(LEASE_SECONDS + 0.5)
        own_cluster.start()
        taken: list[WorkItem] = []

        async def claimed() -> bool:
            # The pool's connections from before the outage are dead: the first tries fail.
            with contextlib.suppress(DatabaseUnavailable):
                taken.extend(await WorkRepository(rt.database).claim("worker-b", REQUESTS, 300))
            return bool(taken)

        await wait_for(claimed, 20, "the second worker's claim")
        assert {item.id for item in taken} == set(ids)
        at_takeover = polls(settings)
        os.kill(first.pid, signal.SIGCONT)

        async def all_lost() -> bool:
            return log.read_text().count('"claim_lost"') >= REQUESTS

        await wait_for(all_lost, 30, "the first worker's claims lost")
        assert polls(settings) == at_takeover
        first.send_signal(signal.SIGTERM)
        assert first.wait(20) == 0, log.read_text()[-3000:]
        assert polls(settings) == at_takeover

        # The second owner resumes the same operations, as the same attempt.
        async with sql_engine(rt).begin() as conn:
            await conn.execute(text("UPDATE video_requests SET lease_expires_at = now()"))
        async with running_worker(rt) as (worker, _):
            found = await wait_terminal(rt, ids, 60)
            await wait_idle(worker, 30)
        assert set(found.values()) == {"completed"}
        assert starts(settings) == {str(rid): 1 for rid in ids}
        for rid in ids:
            read = await rt.queries.get_request(rid)
            assert read.retry_count == 0
            assert {s.name: s.attempts for s in read.stages}["video_generation"] == 1
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait(10)
        await rt.close()
