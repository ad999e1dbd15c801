"""Error Recovery and Data Integrity: PostgreSQL goes away mid-flight and nothing is lost."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from service.background import replay_journal_once
from service.errors import RateLimited
from service.request_states import RequestStatus
from service.runtime import Runtime
from service.settings import RateLimit, Settings
from service.video_request import VideoRequest
from telemetry.metrics import Metrics, get_metrics
from tests.support.logs import json_logs
from tests.support.pg import PgCluster
from tests.support.sql import sql_engine

DUMP = {
    "video_requests": "SELECT id, correlation_id, status, started_at, completed_at, duration_ms, video_urls,"
    " error_message, current_stage, progress_percentage, retry_count FROM video_requests ORDER BY id",
    "request_stages": "SELECT request_id, stage_name, status, attempts, started_at, completed_at, duration_ms"
    " FROM request_stages ORDER BY request_id, stage_order",
    "request_events": "SELECT event_uid, request_id, event_type, created_at FROM request_events ORDER BY id",
}


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A cluster this test may stop and start without disturbing the others."""
    root = Path(tempfile.mkdtemp(prefix="reeltrace-pg-outage-"))
    cluster = PgCluster(root)
    cluster.create_template()
    yield cluster
    cluster.server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def outage_runtime(own_cluster: PgCluster, tmp_path: Path) -> AsyncIterator[Runtime]:
    url = own_cluster.url(own_cluster.new_database())
    runtime = Runtime.build(Settings(database_url=url, data_dir=tmp_path), url, source_service="test")
    yield runtime
    await runtime.close()


async def dump(runtime: Runtime) -> dict[str, list[Any]]:
    async with sql_engine(runtime).connect() as conn:
        return {name: [tuple(r) for r in await conn.execute(text(q))] for name, q in DUMP.items()}


def failures(operation: str) -> float:
    return (
        get_metrics().registry.get_sample_value(
            "reeltrace_tracking_write_failures_total", {"operation": operation}
        )
        or 0.0
    )


async def test_outage_is_journaled_and_backfilled_exactly(
    outage_runtime: Runtime, own_cluster: PgCluster
) -> None:
    """Requests proceed while PostgreSQL is down; backfill restores exactly the missing writes, once."""
    rt, t = outage_runtime, outage_runtime.tracker
    a = await t.create_request(VideoRequest(user_id="u1", guild_id="g", prompt="before the outage"))
    await t.start_request(a.id)
    before_failures = failures("create"), failures("transition")

    own_cluster.stop()
    with json_logs() as lines:
        done_a = await t.complete_request(a.id, ["https://cdn/a.mp4"])
        b = await t.create_request(VideoRequest(user_id="u2", guild_id="g", prompt="during the outage"))
        await t.start_request(b.id)
        await t.start_stage(b.id, "validation")
        await t.complete_stage(b.id, "validation", output={"ok": True})
        await t.start_stage(b.id, "video_generation")
        await t.record_operation(
            b.id, "projects/sim/locations/local/publishers/google/models/m/operations/x", "local://b/"
        )
        await t.retry_stage(b.id, "video_generation", 1, "quota", delay_seconds=1.0)
        await t.start_stage(b.id, "video_generation", attempt=2)
        await t.complete_stage(b.id, "video_generation")
        await t.fail_request(b.id, "processing failed", error_stage="video_processing")
        await t.log_event(a.id, "note", "written while down")

    # The user's request went on: a synthetic (journaled) ID came back, no exception.
    assert b.journaled
    assert b.created
    assert done_a is None
    # The status update was tried once (no retry), logged as an error with its
    # request, and journaled; so was the create of a request with nothing journaled;
    # every later write of a request queued behind its own in the journal.
    failed_a, failed_b = lines("tracking_write_failed")
    assert (failed_a["level"], failed_a["operation"]) == ("error", "transition")
    assert (failed_a["request_id"], failed_a["new_status"]) == (str(a.id), "completed")
    assert (failed_b["operation"], failed_b["request_id"]) == ("create", str(b.id))
    queued = lines("tracking_write_queued")
    assert len(queued) == 10
    assert {line["level"] for line in queued} == {"warning"}
    assert failures("transition") == before_failures[1] + 1
    assert failures("create") == before_failures[0] + 1
    journal_lines = rt.journal.path.read_text().splitlines()
    assert len(journal_lines) == 12
    journal_copy = rt.journal.path.read_text()

    own_cluster.start()
    report = await t.backfill()
    assert (report.applied, report.rejected, report.remaining) == (12, 0, 0)
    assert not rt.journal.has_pending()

    read_a = await rt.queries.get_request(a.id)
    read_b = await rt.queries.get_request(b.id)
    assert (read_a.status, read_a.video_urls) == (RequestStatus.COMPLETED, ["https://cdn/a.mp4"])
    assert read_a.duration_ms is not None
    assert (read_b.correlation_id, read_b.status, read_b.error_stage) == (
        b.correlation_id,
        "failed",
        "video_processing",
    )
    assert read_b.operation_name is not None
    assert read_b.created_at == b.created_at
    stages = {s.name: s for s in read_b.stages}
    assert (stages["validation"].status, stages["video_generation"].attempts) == ("completed", 2)
    assert read_b.retry_count == 1
    events_b = [e.event_type for e in await rt.queries.events(b.id)]
    assert events_b == [
        "request_created", "request_started", "stage_started", "stage_completed", "stage_started",
        "operation_started", "retry", "stage_started", "stage_completed", "request_failed",
    ]  # fmt: skip
    assert [e.event_type for e in await rt.queries.events(a.id)][-2:] == ["request_completed", "note"]

    # Replaying the same journal again (a backfill that died before truncating) changes nothing.
    state = await dump(rt)
    rt.journal.path.write_text(journal_copy)
    again = await t.backfill()
    assert (again.applied, again.already_applied, again.rejected) == (0, 12, 0)
    assert await dump(rt) == state


async def test_writes_queue_behind_the_journal_until_replayed(
    outage_runtime: Runtime, own_cluster: PgCluster
) -> None:
    """Once anything is journaled, later writes join the journal, so history replays in order."""
    t = outage_runtime.tracker
    own_cluster.stop()
    with json_logs() as lines:
        created = await t.create_request(VideoRequest(user_id="u3", guild_id="g3", prompt="queued"))
    # Creation with PostgreSQL down: an error with full context, and a synthetic ID.
    [line] = lines("tracking_write_failed")
    assert (line["level"], line["operation"], line["request_id"]) == ("error", "create", str(created.id))
    assert (line["user_id"], line["guild_id"], line["correlation_id"]) == ("u3", "g3", created.correlation_id)
    assert created.journaled
    own_cluster.start()
    # The server is back, but the create is still in the journal: this must not jump ahead of it.
    assert await t.start_request(created.id) is None
    report = await t.backfill()
    assert report.applied == 2
    assert (await outage_runtime.queries.get_request(created.id)).status == RequestStatus.GENERATING


async def test_backfill_stops_and_keeps_the_rest_if_the_database_goes_away_again(
    outage_runtime: Runtime, own_cluster: PgCluster
) -> None:
    """A replay interrupted by a new outage keeps every unapplied write for the next one."""
    t = outage_runtime.tracker
    own_cluster.stop()
    created = await t.create_request(VideoRequest(user_id="u4", prompt="twice unlucky"))
    await t.start_request(created.id)
    report = await t.backfill()
    assert (report.applied, report.remaining) == (0, 2)
    assert outage_runtime.journal.pending_count() == 2
    own_cluster.start()
    assert (await t.backfill()).applied == 2


async def test_writes_that_can_never_apply_are_kept_aside(
    outage_runtime: Runtime, own_cluster: PgCluster
) -> None:
    """A journaled transition the request has moved past goes to rejected.jsonl with its reason."""
    t = outage_runtime.tracker
    created = await t.create_request(VideoRequest(user_id="u5", prompt="raced"))
    own_cluster.stop()
    await t.start_request(created.id)
    own_cluster.start()
    # Meanwhile an operator ended the request directly in the database.
    async with sql_engine(outage_runtime).begin() as conn:
        await conn.execute(
            text("UPDATE video_requests SET status = 'generating' WHERE id = :id"), {"id": created.id}
        )
        await conn.execute(
            text("UPDATE video_requests SET status = 'failed' WHERE id = :id"), {"id": created.id}
        )
    report = await t.backfill()
    assert (report.applied, report.rejected) == (0, 1)
    rejected = outage_runtime.journal.rejected_path.read_text()
    assert "InvalidStatusTransition" in rejected
    assert str(created.id) in rejected


async def test_journal_gauge_follows_a_drain_by_another_process(
    outage_runtime: Runtime, own_cluster: PgCluster
) -> None:
    """Processes of one data dir share the journal: when another process replays it, this process's
    pending gauge drops to zero at its next replayer tick instead of showing the writes forever."""
    metrics = Metrics(CollectorRegistry())
    outage_runtime.tracker.metrics = metrics  # this process's own /metrics

    def pending() -> float | None:
        return metrics.registry.get_sample_value("reeltrace_tracking_journal_pending")

    own_cluster.stop()
    await outage_runtime.tracker.create_request(VideoRequest(user_id="u6", prompt="journaled here"))
    assert pending() == 1
    own_cluster.start()
    other = Runtime.build(outage_runtime.settings, outage_runtime.database_url, source_service="api")
    try:
        assert (await other.tracker.backfill()).applied == 1
    finally:
        await other.close()
    await replay_journal_once(outage_runtime)
    assert pending() == 0


async def test_requests_ended_during_an_outage_are_counted_once_replayed(
    outage_runtime: Runtime, own_cluster: PgCluster
) -> None:
    """A request that finished while PostgreSQL was down is counted in reeltrace_requests_finished_total
    (and its duration observed) when the journal is replayed, once."""
    t = outage_runtime.tracker

    def finished() -> float:
        labels = {"pipeline": "veo", "status": "completed"}
        return get_metrics().registry.get_sample_value("reeltrace_requests_finished_total", labels) or 0.0

    def observed() -> float:
        labels = {"pipeline": "veo", "status": "completed", "aspect_ratio": "16:9"}
        sample = "reeltrace_request_duration_seconds_count"
        return get_metrics().registry.get_sample_value(sample, labels) or 0.0

    before = (finished(), observed())
    own_cluster.stop()
    created = await t.create_request(VideoRequest(user_id="u7", prompt="ended offline"))
    await t.start_request(created.id)
    await t.complete_request(created.id, ["http://media.test/x.mp4"])
    assert (finished(), observed()) == before
    own_cluster.start()
    assert (await t.backfill()).applied == 3
    assert (finished(), observed()) == (before[0] + 1, before[1] + 1)
    assert (await t.backfill()).applied == 0
    assert (finished(), observed()) == (before[0] + 1, before[1] + 1)


async def test_request_with_nothing_journaled_writes_straight_once_the_database_is_back(
    outage_runtime: Runtime, own_cluster: PgCluster
) -> None:
    """Once PostgreSQL answers, a new request is created in it at once (not journaled) while another
    request's journaled writes still wait, and that request's next write queues behind its own."""
    rt, t = outage_runtime, outage_runtime.tracker
    a = await t.create_request(VideoRequest(user_id="u1", prompt="before the outage"))
    own_cluster.stop()
    await t.start_request(a.id)  # journaled
    own_cluster.start()

    b = await t.create_request(VideoRequest(user_id="u2", prompt="after the outage"))
    assert not b.journaled
    assert (await rt.queries.get_request(b.id)).status == RequestStatus.PENDING
    assert await t.complete_request(a.id, ["https://cdn/a.mp4"]) is None  # queued behind its start
    assert len(rt.journal.path.read_text().splitlines()) == 2

    report = await t.backfill()
    assert (report.applied, report.rejected) == (2, 0)
    assert (await rt.queries.get_request(a.id)).status == RequestStatus.COMPLETED


async def test_degraded_submissions_keep_the_rate_limit_per_process(
    outage_runtime: Runtime, own_cluster: PgCluster
) -> None:
    """While PostgreSQL is down, a user past the limit in this process gets RateLimited with a
    Retry-After, and nothing more is journaled for them."""
    t = outage_runtime.tracker
    limit = RateLimit(2, 60)
    await t.create_request(VideoRequest(user_id="u1", prompt="counted in PostgreSQL"), rate_limit=limit)
    own_cluster.stop()
    degraded = await t.create_request(VideoRequest(user_id="u1", prompt="counted here"), rate_limit=limit)
    assert degraded.journaled
    with pytest.raises(RateLimited) as refused:
        await t.create_request(VideoRequest(user_id="u1", prompt="one too many"), rate_limit=limit)
    assert refused.value.retry_after >= 1
    other = await t.create_request(VideoRequest(user_id="u2", prompt="another user"), rate_limit=limit)
    assert other.journaled
    assert len(outage_runtime.journal.path.read_text().splitlines()) == 2
