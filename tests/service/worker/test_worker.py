"""Workers on a real PostgreSQL: leases, many workers at once, release and resume, lost leases."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from service.request_states import RequestStatus
from service.runtime import Runtime
from service.settings import Settings
from service.tracking.write_values import EventWrite, Transition
from service.wiring import build_pipeline
from service.worker.repository import WorkRepository
from service.worker.worker import MAX_CLAIMS, Worker
from tests.support.callback import CallbackServer
from tests.support.logs import json_logs
from tests.support.pipelines import run_stages
from tests.support.sql import sql_engine
from tests.support.workers import (
    count_events,
    events_of,
    running_worker,
    statuses,
    submit,
    wait_for,
    wait_idle,
    wait_terminal,
)


async def rows(runtime: Runtime, sql: str, **params: object) -> list[tuple[object, ...]]:
    async with sql_engine(runtime).connect() as conn:
        return [tuple(r) for r in await conn.execute(text(sql), params)]


def sim_operations(settings: Settings) -> Counter[str]:
    """Operations started per request id, from the simulated backend's state file."""
    with sqlite3.connect(Path(settings.data_dir) / "sim" / "operations.sqlite3") as db:
        return Counter(r[0] for r in db.execute("SELECT request_id FROM operations"))


async def test_concurrent_claims_never_overlap(runtime: Runtime) -> None:
    """Claims racing from many connections take disjoint sets of requests (FOR UPDATE SKIP LOCKED)."""
    ids = await submit(runtime, 60)
    repo = WorkRepository(runtime.database)
    batches = await asyncio.gather(*(repo.claim(f"w{i}", 10, 30) for i in range(8)))
    claimed = [item.id for batch in batches for item in batch]
    assert len(claimed) == len(set(claimed)) == 60
    assert set(claimed) == set(ids)
    assert await repo.claim("late", 10, 30) == []  # every lease is held


async def test_expired_leases_are_claimed_again(runtime: Runtime) -> None:
    """A lease that expired is claimable (claims counts up); a live one and a terminal request are not."""
    held, expired, done = await submit(runtime, 3)
    repo = WorkRepository(runtime.database)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text(
                "UPDATE video_requests SET lease_owner = 'gone', claims = 1,"
                " lease_expires_at = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": expired},
        )
        await conn.execute(
            text(
                "UPDATE video_requests SET lease_owner = 'alive', claims = 1,"
                " lease_expires_at = now() + interval '1 minute' WHERE id = :id"
            ),
            {"id": held},
        )
    await runtime.tracker.start_request(done)
    await runtime.tracker.complete_request(done, [])
    [item] = await repo.claim("me", 10, 30)
    assert item.id == expired
    assert item.claims == 2
    assert await rows(runtime, "SELECT lease_owner FROM video_requests WHERE id = :id", id=expired) == [
        ("me",)
    ]


async def test_heartbeat_extends_only_own_leases(runtime: Runtime) -> None:
    """A heartbeat extends the leases this worker holds and reports the ones it lost."""
    mine, theirs = await submit(runtime, 2)
    repo = WorkRepository(runtime.database)
    held = {item.id: item.claim_generation for item in await repo.claim("me", 2, 1)}
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text("UPDATE video_requests SET lease_owner = 'other' WHERE id = :id"), {"id": theirs}
        )
    [(before,)] = await rows(runtime, "SELECT clock_timestamp()")
    assert await repo.heartbeat("me", held, 60) == {mine}
    [(after,)] = await rows(runtime, "SELECT clock_timestamp()")
    [(expires,)] = await rows(runtime, "SELECT lease_expires_at FROM video_requests WHERE id = :id", id=mine)
    # Sixty seconds from the moment of the heartbeat, whenever within the call that was.
    assert before + timedelta(seconds=60) <= expires <= after + timedelta(seconds=60)


@pytest.mark.slow
async def test_four_workers_run_200_requests_once_each(settings: Settings, database_url: str) -> None:
    """200 requests through 4 workers: all complete, none is claimed twice, each stage attempt runs once."""
    narrow = settings.model_copy(update={"worker_concurrency": 25})
    runtimes = [Runtime.build(narrow, database_url, source_service=f"worker-{i}") for i in range(4)]
    try:
        ids = await submit(runtimes[0], 200)
        stop = asyncio.Event()
        workers = []
        services = []
        for i, rt in enumerate(runtimes):
            built = build_pipeline(rt)
            services.append(built)
            workers.append(Worker(rt, built.runner, worker_id=f"worker-{i}"))
        tasks = [asyncio.create_task(w.run(stop)) for w in workers]
        try:
            found = await wait_terminal(runtimes[0], ids, 60)
            for w in workers:
                await wait_idle(w)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            for built in services:
                await built.aclose()
        rt = runtimes[0]
        assert set(found.values()) == {"completed"}
        claims = await rows(rt, "SELECT claims, lease_owner FROM video_requests")
        assert Counter(claims) == {(1, None): 200}
        duplicated = await rows(
            rt,
            "SELECT request_id, stage_name, data->>'attempt', count(*) FROM request_events"
            " WHERE event_type = 'stage_started'"
            " GROUP BY 1, 2, 3 HAVING count(*) > 1",
        )
        assert duplicated == []
        assert await count_events(rt, "stage_started") == 200 * len(run_stages("veo"))
        assert await count_events(rt, "request_completed") == 200
        assert sum(sim_operations(narrow).values()) == 200
        # Every worker took part (each writes its own source_service).
        by_worker = await rows(
            rt,
            "SELECT source_service, count(*) FROM request_events WHERE event_type = 'request_started' GROUP BY 1",
        )
        assert {name for name, _ in by_worker} == {f"worker-{i}" for i in range(4)}
    finally:
        for rt in runtimes:
            await rt.close()


async def test_stopped_worker_hands_over_without_restarting_generations(
    settings: Settings, database_url: str
) -> None:
    """A worker stopped mid-generation hands its leases over; the next worker resumes polling the
    stored operations at once, as the same attempt (no retry counted), and starts none again."""
    slow = settings.model_copy(update={"sim_latency_seconds": 1.0})
    rt = Runtime.build(slow, database_url, source_service="test")
    try:
        ids = await submit(rt, 5)

        async def all_started() -> bool:
            return await count_events(rt, "operation_started") == 5

        async with running_worker(rt, worker_id="first"):
            await wait_for(all_started, what="5 operations started")
        # Handed over: still marked with the old owner, but expired, so claimable at once.
        assert await rows(
            rt, "SELECT DISTINCT lease_owner, lease_expires_at <= now() FROM video_requests"
        ) == [("first", True)]
        assert set((await statuses(rt, ids)).values()) == {"generating"}
        names = dict(await rows(rt, "SELECT id, operation_name FROM video_requests"))

        async with running_worker(rt, worker_id="second") as (worker, _):
            found = await wait_terminal(rt, ids)
            await wait_idle(worker)
        assert set(found.values()) == {"completed"}
        assert dict(await rows(rt, "SELECT id, operation_name FROM video_requests")) == names
        assert sim_operations(slow) == {str(i): 1 for i in ids}
        for rid in ids:
            assert len(await events_of(rt, rid, "request_resumed")) == 1
            assert len(await events_of(rt, rid, "operation_started")) == 1
            started = await events_of(rt, rid, "stage_started")
            # The generation's attempt 1 starts again under the second worker's claim.
            assert [(e.stage_name, e.data["attempt"]) for e in started] == [
                (name, 1) for name in run_stages("veo") for _ in range(2 if name == "video_generation" else 1)
            ]
            assert (await rt.queries.get_request(rid)).retry_count == 0
        assert Counter(r[0] for r in await rows(rt, "SELECT claims FROM video_requests")) == {2: 5}
    finally:
        await rt.close()


async def test_lost_lease_cancels_the_run(settings: Settings, database_url: str) -> None:
    """When another worker has taken a request's lease, the heartbeat cancels the local run of it."""
    slow = settings.model_copy(update={"sim_latency_seconds": 30.0, "heartbeat_seconds": 3600})
    rt = Runtime.build(slow, database_url, source_service="test")
    try:
        [rid] = await submit(rt)

        async def started() -> bool:
            return await count_events(rt, "operation_started") == 1

        async with running_worker(rt, worker_id="loser") as (worker, _):
            await wait_for(started)
            task = worker.active[rid]
            async with sql_engine(rt).begin() as conn:
                await conn.execute(
                    text("UPDATE video_requests SET lease_owner = 'thief' WHERE id = :id"), {"id": rid}
                )
            await worker.heartbeat()
            await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled()
            assert rid not in worker.active
        # The new owner's lease is left alone, and nothing was recorded as failed.
        assert await rows(rt, "SELECT lease_owner, status::text FROM video_requests") == [
            ("thief", "generating")
        ]
        assert await events_of(rt, rid, "stage_failed") == []
    finally:
        await rt.close()


async def test_abandoned_request_is_still_notified(settings: Settings, database_url: str) -> None:
    """A crash-looping request failed by the worker still gets its callback, with status failed."""
    sweeping = settings.model_copy(update={"watchdog_interval_seconds": 0.05})
    with CallbackServer() as callback:
        rt = Runtime.build(sweeping, database_url, source_service="test")
        try:
            [rid] = await submit(rt, parameters={"callback_url": callback.url})
            async with sql_engine(rt).begin() as conn:
                await conn.execute(
                    text("UPDATE video_requests SET claims = :n WHERE id = :id"), {"n": MAX_CLAIMS, "id": rid}
                )

            async def delivered() -> bool:
                return bool(callback.deliveries)

            async with running_worker(rt) as (worker, _):
                await wait_for(delivered, 10, "callback delivered")
                await wait_idle(worker)
        finally:
            await rt.close()
    [delivery] = callback.deliveries
    assert delivery.headers["x-reeltrace-event"] == "request.failed"


async def test_crash_looping_request_is_abandoned(runtime: Runtime) -> None:
    """A request claimed more than MAX_CLAIMS times (its runs keep dying) is failed, not run again."""
    [rid] = await submit(runtime)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text("UPDATE video_requests SET claims = :n WHERE id = :id"), {"n": MAX_CLAIMS, "id": rid}
        )
    async with running_worker(runtime) as (worker, _):
        await wait_terminal(runtime, [rid])
        await wait_idle(worker)
    read = await runtime.queries.get_request(rid)
    assert read.status == "failed"
    assert read.error_message == f"abandoned after {MAX_CLAIMS} runs ended without a result"
    assert await events_of(runtime, rid, "stage_started") == []


async def test_worker_leaves_unknown_ids_alone(runtime: Runtime) -> None:
    """Releasing or heartbeating requests the worker does not hold changes nothing."""
    [rid] = await submit(runtime)
    repo = WorkRepository(runtime.database)
    [item] = await repo.claim("owner", 1, 30)
    await repo.release("stranger", {rid: item.claim_generation, uuid.uuid4(): 1})
    assert await repo.heartbeat("stranger", {rid: item.claim_generation}, 30) == set()
    assert await rows(runtime, "SELECT lease_owner FROM video_requests") == [("owner",)]


async def test_notification_cut_off_by_a_dead_run_is_sent_by_another_worker(
    settings: Settings, database_url: str
) -> None:
    """A run that died after ending its request but before notifying leaves an expired lease; another
    worker's watchdog takes it over and runs only the notification stage."""
    with CallbackServer() as callback:
        rt = Runtime.build(settings, database_url, source_service="test")
        try:
            [rid] = await submit(rt, parameters={"callback_url": callback.url})
            tracker = rt.tracker
            await tracker.start_request(rid)
            for stage in run_stages("veo"):
                await tracker.start_stage(rid, stage)
                await tracker.complete_stage(rid, stage)
            await tracker.complete_request(rid, ["http://media.test/x.mp4"])
            async with sql_engine(rt).begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE video_requests SET lease_owner = 'dead', claims = 1,"
                        " lease_expires_at = now() - interval '1 second' WHERE id = :id"
                    ),
                    {"id": rid},
                )
            services = build_pipeline(rt)
            worker = Worker(rt, services.runner, worker_id="sweeper")
            try:
                await worker.watchdog()
                assert list(worker.active) == [rid]
                await wait_idle(worker)
            finally:
                await services.aclose()
            read = await rt.queries.get_request(rid)
            assert read.status == "completed"
            notification = next(s for s in read.stages if s.name == "notification")
            assert notification.status == "completed"
            assert [s.attempts for s in read.stages if s.name != "notification"] == [1] * len(
                run_stages("veo")
            )
            assert await rows(rt, "SELECT lease_owner, claims FROM video_requests") == [(None, 2)]
            # Once notified, the request is not taken again.
            assert await worker.claim_unnotified() == 0
        finally:
            await rt.close()
    [delivery] = callback.deliveries
    assert b'"status":"completed"' in delivery.body


async def test_finished_runs_leave_no_lease_behind(runtime: Runtime) -> None:
    """A run that ends normally clears its lease, so the notification sweep never takes it."""
    ids = await submit(runtime, 3)
    async with running_worker(runtime) as (worker, _):
        await wait_terminal(runtime, ids)
        await wait_idle(worker)
        assert await worker.claim_unnotified() == 0
    assert await rows(runtime, "SELECT DISTINCT lease_owner, claims FROM video_requests") == [(None, 1)]


async def test_worker_never_runs_a_request_twice_after_its_own_lease_lapsed(
    settings: Settings, database_url: str
) -> None:
    """If this worker stalls past its own lease and claims a request it is still running, the running
    task is kept, goes on under the new claim's fence, and no second run starts."""
    slow = settings.model_copy(update={"sim_latency_seconds": 30.0, "heartbeat_seconds": 3600})
    rt = Runtime.build(slow, database_url, source_service="test")
    try:
        [rid] = await submit(rt)

        async def started() -> bool:
            return await count_events(rt, "operation_started") == 1

        async with running_worker(rt, worker_id="stalled") as (worker, _):
            await wait_for(started)
            task = worker.active[rid]
            async with sql_engine(rt).begin() as conn:
                await conn.execute(
                    text("UPDATE video_requests SET lease_expires_at = now() - interval '1 second'")
                )
            await worker.claim_once()
            assert worker.active[rid] is task
            await asyncio.sleep(0.2)
            assert not task.done()
            # Reclaimed (or renewed by the run's own next poll first): either way the run
            # holds the request's current fence.
            [(generation,)] = await rows(rt, "SELECT claim_generation FROM video_requests")
            assert worker.claims[rid].generation == generation
            assert not worker.claims[rid].lost
        assert len(await events_of(rt, rid, "stage_started")) == 2  # validation, generation
        assert len(await events_of(rt, rid, "request_resumed")) == 0
    finally:
        await rt.close()


async def test_claims_follow_the_runs_this_worker_can_start(settings: Settings, database_url: str) -> None:
    """A worker claims free database permits plus one round queued, and leaves the rest of a backlog
    to other workers, which then share it."""
    narrow = settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 0})
    first_rt = Runtime.build(narrow, database_url, source_service="worker-a")
    second_rt = Runtime.build(narrow, database_url, source_service="worker-b")
    first_services, second_services = build_pipeline(first_rt), build_pipeline(second_rt)
    first = Worker(first_rt, first_services.runner, worker_id="a")
    second = Worker(second_rt, second_services.runner, worker_id="b")
    try:
        ids = await submit(first_rt, 40)
        assert await first.claim_once() == 4  # 2 free permits + 2 queued
        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(stop)) for w in (first, second)]
        try:
            found = await wait_terminal(first_rt, ids, 60)
            await wait_idle(first)
            await wait_idle(second)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert set(found.values()) == {"completed"}
        by_worker = dict(
            await rows(
                first_rt,
                "SELECT source_service, count(*) FROM request_events"
                " WHERE event_type = 'request_started' GROUP BY 1",
            )
        )
        assert set(by_worker) == {"worker-a", "worker-b"}, by_worker
        assert await rows(first_rt, "SELECT DISTINCT claims FROM video_requests") == [(1,)]
    finally:
        await first_services.aclose()
        await second_services.aclose()
        await first_rt.close()
        await second_rt.close()


async def test_stopping_waits_for_a_run_still_releasing_its_lease(runtime: Runtime) -> None:
    """A run that has ended but is still releasing its lease is waited for on shutdown, so no
    statement is left running when the process then closes its connection pool."""
    [rid] = await submit(runtime)
    services = build_pipeline(runtime)
    worker = Worker(runtime, services.runner)
    releasing, proceed = asyncio.Event(), asyncio.Event()
    release = worker.repo.release

    async def held_release(worker_id: str, ids: list[uuid.UUID]) -> None:
        releasing.set()
        await proceed.wait()
        await release(worker_id, ids)

    worker.repo.release = held_release  # type: ignore[method-assign]
    # A run's last write normally clears its lease itself; here it leaves the release to
    # the worker, as when that write went to the journal.
    runtime.tracker.release_with_last_write = lambda request_id: None  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(releasing.wait(), 20)
        assert rid not in worker.active  # the run has left `active`: only its release remains
        stop.set()
        await asyncio.sleep(0.3)
        assert not task.done()
    finally:
        proceed.set()
        stop.set()
        await asyncio.wait_for(task, 10)
        await services.aclose()
    assert await rows(runtime, "SELECT lease_owner FROM video_requests") == [(None,)]


async def test_stopping_is_not_held_up_by_a_row_lock_held_elsewhere(
    settings: Settings, database_url: str
) -> None:
    """A hand-over blocked by another session's row lock is given up after one lease (by then the
    lease has expired anyway), so a stopping worker does not hang on it."""
    slow = settings.model_copy(
        update={"sim_latency_seconds": 30.0, "lease_seconds": 2.0, "heartbeat_seconds": 0.5}
    )
    rt = Runtime.build(slow, database_url, source_service="test")
    services = build_pipeline(rt)
    locker = await psycopg.AsyncConnection.connect(database_url)
    try:
        [rid] = await submit(rt)
        worker = Worker(rt, services.runner, worker_id="blocked")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))

        async def started() -> bool:
            return await count_events(rt, "operation_started") == 1

        await wait_for(started)
        await locker.execute("SELECT 1 FROM video_requests WHERE id = %s FOR UPDATE", (rid,))
        with json_logs() as lines:
            stop.set()
            # It stops although the row is still locked: the hand-over was given up.
            await asyncio.wait_for(task, 20)
        [line] = lines("worker_hand_over_abandoned")
        assert (line["level"], line["count"]) == ("warning", 1)
        await locker.rollback()
        # The lock gone: the request is still generating, and its lease has expired.
        assert await rows(rt, "SELECT status::text, lease_expires_at <= now() FROM video_requests") == [
            ("generating", True)
        ]
    finally:
        await locker.close()
        await services.aclose()
        await rt.close()


async def test_no_claims_while_the_journal_holds_writes(settings: Settings, database_url: str) -> None:
    """A request that finished while PostgreSQL was down still shows `generating` in the database
    until the journal is replayed: workers must not claim it (nor sweep it) before then, or it runs
    again and its callback goes out twice."""
    with CallbackServer() as callback:
        rt = Runtime.build(settings, database_url, source_service="test")
        try:
            [rid] = await submit(rt, parameters={"callback_url": callback.url})
            await rt.tracker.start_request(rid)
            # What a run that ended during an outage leaves in the journal (the rest of its
            # history is left out for brevity): the request row itself still says generating.
            now = datetime.now(UTC)
            done = EventWrite(request_id=rid, event_type="request_completed", created_at=now)
            urls = ["http://media.test/x.mp4"]
            rt.journal.append(
                Transition(
                    request_id=rid, new_status=RequestStatus.COMPLETED, at=now, video_urls=urls, event=done
                )
            )
            services = build_pipeline(rt)
            worker = Worker(rt, services.runner, worker_id="after-outage")
            try:
                assert await worker.claim_once() == 0
                await worker.watchdog()
                assert worker.active == {}
                report = await rt.tracker.backfill()
                assert (report.applied, report.rejected) == (1, 0)
                assert await worker.claim_once() == 0  # now known to be finished
            finally:
                await services.aclose()
            assert await rows(rt, "SELECT status::text, claims FROM video_requests") == [("completed", 0)]
        finally:
            await rt.close()
    assert callback.deliveries == []


async def test_request_ended_under_its_run_is_still_notified(settings: Settings, database_url: str) -> None:
    """When an operator (or another worker's watchdog) ends a request while a worker runs it, the run
    stops at its next status change and leaves the notification to the sweep: the callback still goes
    out, once, with the final status."""
    slow = settings.model_copy(update={"sim_latency_seconds": 1.0, "watchdog_interval_seconds": 0.05})
    with CallbackServer() as callback:
        rt = Runtime.build(slow, database_url, source_service="test")
        try:
            [rid] = await submit(rt, parameters={"callback_url": callback.url})
            async with running_worker(rt) as (worker, _):

                async def generating() -> bool:
                    return bool(await events_of(rt, rid, "operation_started"))

                async def delivered() -> bool:
                    return bool(callback.deliveries)

                await wait_for(generating, what="generation started")
                await rt.tracker.timeout_request(rid, "ended by an operator", error_stage="video_generation")
                await wait_for(delivered, 10, "callback delivered")
                await wait_idle(worker)
            assert [e.message for e in await events_of(rt, rid, "request_resumed")] == [
                "notification resumed by a worker (claim 2)"
            ]
        finally:
            await rt.close()
    [delivery] = callback.deliveries
    assert delivery.headers["x-reeltrace-event"] == "request.timeout"
