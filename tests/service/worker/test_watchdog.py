"""The stuck-request watchdog and the oldest-request-age gauge."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from service.errors import ClaimLost
from service.pipeline.definitions import PIPELINES
from service.runtime import Runtime
from service.settings import Settings
from service.tracking.fence import Claim, holding
from service.wiring import build_pipeline
from service.worker.worker import Worker
from telemetry.metrics import get_metrics
from tests.support.callback import CallbackServer
from tests.support.pipelines import stage_names
from tests.support.sql import sql_engine
from tests.support.workers import count_events, running_worker, submit, wait_for, wait_idle


def oldest_age(status: str) -> float | None:
    return get_metrics().registry.get_sample_value("reeltrace_oldest_request_age_seconds", {"status": status})


async def generating(runtime: Runtime, pipeline: str = "veo", age_seconds: float = 0) -> uuid.UUID:
    """A request in video_generation, created and started `age_seconds` ago, with no live worker."""
    params = {"topic": "tides"} if pipeline == "lesson" else {}
    [rid] = await submit(runtime, pipeline=pipeline, parameters=params)
    await runtime.tracker.start_request(rid)
    await runtime.tracker.start_stage(rid, "video_generation")
    await backdate(runtime, rid, age_seconds)
    return rid


async def backdate(runtime: Runtime, rid: uuid.UUID, age_seconds: float) -> None:
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text(
                "UPDATE video_requests SET created_at = now() - make_interval(secs => :age),"
                " started_at = CASE WHEN started_at IS NULL THEN NULL"
                " ELSE now() - make_interval(secs => :age) END WHERE id = :id"
            ),
            {"id": rid, "age": age_seconds},
        )


@pytest.fixture
async def idle_worker(runtime: Runtime) -> AsyncIterator[Worker]:
    """A worker that is not running: the test calls its watchdog directly."""
    services = build_pipeline(runtime)
    yield Worker(runtime, services.runner, worker_id="watchdog-test")
    await services.aclose()


async def test_stuck_generating_request_times_out(runtime: Runtime, idle_worker: Worker) -> None:
    """A request generating for longer than its pipeline's budget ends as timeout, with the reason."""
    budget = PIPELINES["veo"].budget_seconds(runtime.settings.generation_timeout_seconds)
    rid = await generating(runtime, age_seconds=budget + 60)
    await idle_worker.watchdog()

    read = await runtime.queries.get_request(rid)
    assert read.status == "timeout"
    assert read.error_message == (
        f"request exceeded the veo pipeline budget of {budget:.0f} s (stuck in video_generation)"
    )
    assert read.error_stage == "video_generation"
    assert read.error_details == {"code": "watchdog"}


async def test_budget_is_per_pipeline(runtime: Runtime, idle_worker: Worker) -> None:
    """The same age ends a veo request but not a lesson request, whose budget is longer."""
    timeout = runtime.settings.generation_timeout_seconds
    veo, lesson = PIPELINES["veo"].budget_seconds(timeout), PIPELINES["lesson"].budget_seconds(timeout)
    assert veo < lesson
    age = (veo + lesson) / 2
    short = await generating(runtime, "veo", age)
    long = await generating(runtime, "lesson", age)
    fresh = await generating(runtime, "veo", 10)
    await idle_worker.watchdog()

    assert (await runtime.queries.get_request(short)).status == "timeout"
    assert (await runtime.queries.get_request(long)).status == "generating"
    assert (await runtime.queries.get_request(fresh)).status == "generating"


async def test_stuck_pending_request_times_out(runtime: Runtime, idle_worker: Worker) -> None:
    """A request that waited in the queue past the pending budget ends as timeout at stage `queue`."""
    [rid] = await submit(runtime)
    budget = runtime.settings.pending_budget_seconds
    await backdate(runtime, rid, budget + 1)
    await idle_worker.watchdog()

    read = await runtime.queries.get_request(rid)
    assert read.status == "timeout"
    assert read.error_message == f"request waited in the queue longer than {budget:.0f} s"
    assert read.error_stage == "queue"


async def test_oldest_age_gauge_per_status(runtime: Runtime, idle_worker: Worker) -> None:
    """The watchdog publishes the age of the oldest pending and generating request, 0 once none is left."""
    [waiting] = await submit(runtime)
    await backdate(runtime, waiting, 120)
    running = await generating(runtime, age_seconds=300)
    await idle_worker.watchdog()
    pending_age, generating_age = oldest_age("pending"), oldest_age("generating")
    assert pending_age is not None
    assert generating_age is not None
    assert 120 <= pending_age < 180
    assert 300 <= generating_age < 360

    for rid in (waiting, running):
        async with sql_engine(runtime).begin() as conn:
            await conn.execute(text("DELETE FROM video_requests WHERE id = :id"), {"id": rid})
    await idle_worker.watchdog()
    assert oldest_age("pending") == 0
    assert oldest_age("generating") == 0


async def test_watchdog_cancels_its_own_run_of_a_stuck_request(settings: Settings, database_url: str) -> None:
    """A stuck request this worker is running is ended as timeout and its run is cancelled, not completed."""
    slow = settings.model_copy(update={"sim_latency_seconds": 30.0, "watchdog_interval_seconds": 3600})
    rt = Runtime.build(slow, database_url, source_service="test")
    try:
        [rid] = await submit(rt)

        async def started() -> bool:
            return await count_events(rt, "operation_started") == 1

        async with running_worker(rt) as (worker, _):
            await wait_for(started)
            task = worker.active[rid]
            budget = PIPELINES["veo"].budget_seconds(slow.generation_timeout_seconds)
            await backdate(rt, rid, budget + 1)
            await worker.watchdog()
            await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled()
        read = await rt.queries.get_request(rid)
        assert read.status == "timeout"
        assert read.error_details == {"code": "watchdog"}
        assert await count_events(rt, "request_completed") == 0
    finally:
        await rt.close()


async def test_request_ended_by_the_watchdog_still_notifies(settings: Settings, database_url: str) -> None:
    """A request the watchdog times out (here: queued past its budget, never run) still gets its
    callback with the final status, from the notification sweep."""
    quick = settings.model_copy(update={"pending_budget_seconds": 60.0})
    with CallbackServer() as callback:
        rt = Runtime.build(quick, database_url, source_service="test")
        services = build_pipeline(rt)
        worker = Worker(rt, services.runner, worker_id="watchdog-test")
        try:
            [rid] = await submit(rt, parameters={"callback_url": callback.url})
            await backdate(rt, rid, 120)
            await worker.watchdog()  # ends it
            await worker.watchdog()  # sweeps its notification
            await wait_idle(worker)
            read = await rt.queries.get_request(rid)
        finally:
            await services.aclose()
            await rt.close()
    assert read.status == "timeout"
    assert next(s for s in read.stages if s.name == "notification").status == "completed"
    [delivery] = callback.deliveries
    assert delivery.headers["x-reeltrace-event"] == "request.timeout"


async def test_watchdog_ending_closes_the_stages_left_open(runtime: Runtime, idle_worker: Worker) -> None:
    """A request the watchdog ends has no stage left in progress or pending, but its notification."""
    budget = PIPELINES["veo"].budget_seconds(runtime.settings.generation_timeout_seconds)
    rid = await generating(runtime, age_seconds=budget + 60)
    await idle_worker.watchdog()

    stages = {s.name: s.status for s in (await runtime.queries.get_request(rid)).stages}
    # The generation's attempt fails; every other stage is skipped, the notification left to its sweep.
    assert stages == dict.fromkeys(stage_names("veo"), "skipped") | {
        "video_generation": "failed",
        "notification": "pending",
    }


async def test_watchdog_ending_fences_out_the_run_it_cut_off(runtime: Runtime, idle_worker: Worker) -> None:
    """The watchdog's ending takes the claim: a later write of the run that held it is refused."""
    budget = PIPELINES["veo"].budget_seconds(runtime.settings.generation_timeout_seconds)
    rid = await generating(runtime, age_seconds=budget + 60)
    [item] = await idle_worker.repo.claim("cut-off", 1, 0.001)
    await idle_worker.watchdog()

    async def stale_run() -> None:
        with holding(Claim(rid, item.claim_generation)):
            await runtime.tracker.complete_stage(rid, "video_generation")

    [outcome] = await asyncio.gather(asyncio.create_task(stale_run()), return_exceptions=True)
    assert isinstance(outcome, ClaimLost | asyncio.CancelledError)
    stages = {s.name: s.status for s in (await runtime.queries.get_request(rid)).stages}
    assert stages["video_generation"] == "failed"
    assert await count_events(runtime, "stage_completed") == 0
