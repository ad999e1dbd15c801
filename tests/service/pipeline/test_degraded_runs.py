"""Degraded mode: with PostgreSQL down, a submitted request runs in-process, and its history lands later."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from service.pipeline.degraded_runs import LocalRuns
from service.runtime import Runtime
from service.settings import Settings
from service.video_request import VideoRequest
from service.wiring import build_pipeline
from tests.support.pg import PgCluster
from tests.support.pipelines import run_stages
from tests.support.sql import sql_engine
from tests.support.workers import running_worker


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[PgCluster]:
    """A PostgreSQL of this test's own, which it may stop and start."""
    cluster = PgCluster(tmp_path / "own-pg")
    cluster.create_template()
    yield cluster
    cluster.server.cleanup()


@pytest.mark.slow
async def test_request_runs_while_postgres_is_down(own_cluster: PgCluster, settings: Settings) -> None:
    """A request submitted while PostgreSQL is down runs to completion in-process; after the restart the
    journal replays its whole history, and workers never run it again."""
    url = own_cluster.url(own_cluster.new_database())
    local_settings = settings.model_copy(update={"database_url": url})
    runtime = Runtime.build(local_settings, url, source_service="api")
    services = build_pipeline(runtime)
    runs = LocalRuns(services.runner)
    try:
        own_cluster.stop()
        new = VideoRequest(user_id="offline", prompt="a lighthouse in a storm")
        created = await runtime.tracker.create_request(new)
        assert created.journaled
        await runs(new, created)
        [task] = runs.tasks
        assert await asyncio.wait_for(task, 20) == "completed"
        assert runtime.journal.pending_count() > 3  # the create and the run's folded writes

        own_cluster.start()
        report = await runtime.tracker.backfill()
        assert report.complete, report
        assert report.rejected == 0

        read = await runtime.queries.get_request(created.id)
        assert read.status == "completed"
        assert read.video_urls == [f"{local_settings.base_url}/media/requests/{created.id}/sample_0.mp4"]
        assert read.operation_name is not None
        assert [s.status for s in read.stages] == ["completed"] * len(run_stages("veo")) + ["skipped"]
        types = [e.event_type for e in await runtime.queries.events(created.id)]
        assert types.count("request_completed") == 1
        assert types.count("operation_started") == 1

        # A worker now running beside it leaves the finished request alone.
        async with running_worker(runtime) as (worker, _):
            await asyncio.sleep(0.3)
            assert await worker.claim_unnotified() == 0
        async with sql_engine(runtime).connect() as conn:
            claims = (await conn.execute(text("SELECT claims FROM video_requests"))).scalar_one()
        assert claims == 0
        with sqlite3.connect(Path(local_settings.data_dir) / "sim" / "operations.sqlite3") as db:
            assert db.execute("SELECT count(*) FROM operations").fetchone() == (1,)
    finally:
        await runs.aclose()
        await services.aclose()
        await runtime.close()
