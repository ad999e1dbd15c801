"""The pipeline runner, driven by a real worker on PostgreSQL with the simulated backends."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import text

from service.backends.base import QuotaExceeded
from service.backends.factory import build_backends
from service.corpus.rows import RetrievedChunk
from service.pipeline.definitions import PIPELINES, Pipeline
from service.pipeline.run_state import RunState
from service.request_states import RequestStatus
from service.runtime import Runtime
from service.settings import Settings
from service.wiring import build_pipeline
from service.worker.repository import WorkRepository
from tests.support.backends import FlakyGeneration, flaky_backends
from tests.support.callback import CallbackServer
from tests.support.pipelines import run_stages, stage_names
from tests.support.sql import sql_engine
from tests.support.workers import events_of, run_to_end, submit

OPERATION = re.compile(
    r"^projects/sim/locations/local/publishers/google/models/[\w.-]+/operations/[0-9a-f-]{36}$"
)


def operation_keys(settings: Settings, rid: uuid.UUID) -> list[str]:
    """Idempotency keys of the simulated operations started for a request."""
    with sqlite3.connect(Path(settings.data_dir) / "sim" / "operations.sqlite3") as db:
        rows = db.execute("SELECT idempotency_key FROM operations WHERE request_id = ?", (str(rid),))
        return [r[0] for r in rows]


async def variant(settings: Settings, database_url: str, **update: object) -> Runtime:
    return Runtime.build(settings.model_copy(update=update), database_url, source_service="test")


async def test_veo_pipeline_completes(runtime: Runtime, settings: Settings) -> None:
    """A veo request runs validation, generation and processing, and ends completed with its video URL."""
    [rid] = await submit(runtime)
    read = (await run_to_end(runtime, [rid]))[rid]

    assert read.status == "completed", read.error_message
    assert read.pipeline == "veo"
    assert [s.name for s in read.stages] == stage_names("veo")
    assert [s.status for s in read.stages] == ["completed"] * len(run_stages("veo")) + ["skipped"]
    assert read.progress_percentage == 100
    assert read.retry_count == 0
    assert OPERATION.match(read.operation_name or "")
    assert read.gcs_prefix == f"local://requests/{rid}/"
    assert read.video_urls == [f"{settings.base_url}/media/requests/{rid}/sample_0.mp4"]
    media = Path(settings.data_dir) / "media" / "requests" / str(rid)
    assert (media / "sample_0.mp4").read_bytes()[4:8] == b"ftyp"
    assert (media / "metadata.json").exists()


async def test_a_request_runs_the_stages_it_was_created_with(runtime: Runtime) -> None:
    """A request without a row for one of its pipeline's stages (created before that stage was
    added) runs the stages it has rows for and completes."""
    [rid] = await submit(runtime)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text("DELETE FROM request_stages WHERE request_id = :id AND stage_name = 'validation'"),
            {"id": rid},
        )
    read = (await run_to_end(runtime, [rid]))[rid]
    assert read.status == "completed", read.error_message
    assert [s.name for s in read.stages] == [name for name in stage_names("veo") if name != "validation"]
    assert "validation" not in {e.stage_name for e in await events_of(runtime, rid, "stage_started")}


async def test_every_stage_is_tracked(runtime: Runtime) -> None:
    """Each stage that runs writes a stage_started and a stage_completed event with its attempt."""
    [rid] = await submit(runtime)
    await run_to_end(runtime, [rid])
    events = await events_of(runtime, rid)
    started = [(e.stage_name, e.data["attempt"]) for e in events if e.event_type == "stage_started"]
    completed = [e.stage_name for e in events if e.event_type == "stage_completed"]
    assert started == [(name, 1) for name in run_stages("veo")]
    assert completed == run_stages("veo")
    types = [e.event_type for e in events]
    assert types[0] == "request_created"
    assert (
        types.index("request_started") < types.index("operation_started") < types.index("request_completed")
    )


async def test_lesson_pipeline_completes(runtime: Runtime) -> None:
    """A lesson request retrieves passages, writes a script, generates the video and completes."""
    [rid] = await submit(
        runtime,
        pipeline="lesson",
        parameters={"topic": "photosynthesis", "learning_objective": "explain the light reactions"},
    )
    read = (await run_to_end(runtime, [rid]))[rid]

    assert read.status == "completed", read.error_message
    assert [s.name for s in read.stages] == stage_names("lesson")
    stages = {s.name: s for s in read.stages}
    assert len(stages["rag_retrieval"].output["chunks"]) == 5  # type: ignore[index]
    assert "photosynthesis" in stages["script_generation"].output["script"]  # type: ignore[index]
    assert read.video_urls


async def test_lesson_without_topic_fails_validation(runtime: Runtime) -> None:
    """A lesson request without a topic fails in validation, once, and its other stages are skipped."""
    [rid] = await submit(runtime, pipeline="lesson")
    read = (await run_to_end(runtime, [rid]))[rid]

    assert read.status == "failed"
    assert read.error_stage == "validation"
    assert "needs a topic" in (read.error_message or "")
    stages = {s.name: s for s in read.stages}
    assert stages["validation"].status == "failed"
    assert stages["validation"].attempts == 1
    assert {stages[n].status for n in stages if n != "validation"} == {"skipped"}
    assert read.retry_count == 0


async def test_retryable_failure_is_retried_then_succeeds(settings: Settings, runtime: Runtime) -> None:
    """Two failed starts are retried: three attempts recorded, two retry events, retry_count 2, completed."""
    backends = flaky_backends(settings, failures=2)
    [rid] = await submit(runtime)
    read = (await run_to_end(runtime, [rid], backends=backends))[rid]

    assert read.status == "completed", read.error_message
    assert read.retry_count == 2
    generation = next(s for s in read.stages if s.name == "video_generation")
    assert generation.attempts == 3
    retries = await events_of(runtime, rid, "retry")
    assert [(e.stage_name, e.data["attempt"]) for e in retries] == [
        ("video_generation", 1),
        ("video_generation", 2),
    ]
    assert all(e.data["next_delay_seconds"] is not None for e in retries)
    started = await events_of(runtime, rid, "stage_started")
    assert [e.data["attempt"] for e in started if e.stage_name == "video_generation"] == [1, 2, 3]
    assert isinstance(backends.generation, FlakyGeneration)
    assert backends.generation.start_calls == 3
    # The failed starts may have created an operation: the retries reuse their key.
    assert operation_keys(settings, rid) == [f"{rid}:1"]


async def test_failing_stage_retries_then_fails_request(settings: Settings, database_url: str) -> None:
    """A stage failing every time is tried 1 + max_retries times, then fails the request with its error_stage."""
    rt = await variant(settings, database_url, sim_failure_rate=1.0, retrieval_backend="simulated")
    try:
        [rid] = await submit(rt, pipeline="lesson", parameters={"topic": "tides"})
        read = (await run_to_end(rt, [rid]))[rid]
    finally:
        await rt.close()

    assert read.status == "failed"
    assert read.error_stage == "rag_retrieval"
    assert "simulated SimulatedRetrieval failure" in (read.error_message or "")
    assert read.error_details is not None
    assert read.error_details["code"] == 503
    assert read.error_details["retryable"] is True
    stages = {s.name: s for s in read.stages}
    assert stages["rag_retrieval"].status == "failed"
    assert stages["rag_retrieval"].attempts == 4
    assert read.retry_count == 3
    for name in ("script_generation", "video_generation", "video_processing", "notification"):
        assert stages[name].status == "skipped", name
    # One stage_failed, after three retries: only the last attempt fails the stage.
    rt2 = Runtime.build(settings, database_url, source_service="test")
    try:
        assert len(await events_of(rt2, rid, "retry")) == 3
        assert len(await events_of(rt2, rid, "stage_failed")) == 1
    finally:
        await rt2.close()


async def test_quota_errors_back_off(settings: Settings, database_url: str) -> None:
    """Quota errors are retried after exponentially growing delays, then fail the stage with code 429."""
    base = 0.05
    rt = await variant(
        settings, database_url, sim_quota_error_rate=1.0, retry_base_seconds=base, retry_max_seconds=5.0
    )
    try:
        [rid] = await submit(rt)
        read = (await run_to_end(rt, [rid]))[rid]
        retries = await events_of(rt, rid, "retry")
    finally:
        await rt.close()

    assert read.status == "failed"
    assert read.error_stage == "video_generation"
    assert "Quota exceeded" in (read.error_message or "")
    assert read.error_details is not None
    assert read.error_details["code"] == 429
    delays = [e.data["next_delay_seconds"] for e in retries]
    assert [e.data["attempt"] for e in retries] == [1, 2, 3]
    # initial * 2^(n-1) plus up to `initial` of jitter.
    for n, delay in enumerate(delays, start=1):
        floor = base * 2 ** (n - 1)
        assert floor <= delay <= floor + base, (n, delay)
    assert delays[0] < delays[1] < delays[2]


async def test_quota_error_then_success(settings: Settings, runtime: Runtime) -> None:
    """A quota error on the start is retried and the request completes."""
    error = QuotaExceeded("Quota exceeded for online_prediction_requests_per_base_model", code=429)
    backends = flaky_backends(settings, failures=1, error=error)
    [rid] = await submit(runtime)
    read = (await run_to_end(runtime, [rid], backends=backends))[rid]
    assert read.status == "completed", read.error_message
    assert read.retry_count == 1
    # A 429 is a refusal (no operation was created): the retry starts with a key of its own.
    assert operation_keys(settings, rid) == [f"{rid}:2"]


async def test_filtered_generation_fails_without_retry(settings: Settings, database_url: str) -> None:
    """A generation blocked by the safety filter fails at once (no retry) with the filter's reason."""
    rt = await variant(settings, database_url, sim_filter_rate=1.0)
    try:
        [rid] = await submit(rt)
        read = (await run_to_end(rt, [rid]))[rid]
    finally:
        await rt.close()
    assert read.status == "failed"
    assert read.error_stage == "video_generation"
    assert "safety filter" in (read.error_message or "")
    assert read.error_details is not None
    assert read.error_details["code"] == "rai_filtered"
    assert read.retry_count == 0


async def test_failed_operation_fails_request(settings: Settings, database_url: str) -> None:
    """An operation that ends in error fails the request at video_generation with the operation's message."""
    rt = await variant(settings, database_url, sim_failure_rate=1.0)
    try:
        [rid] = await submit(rt)
        read = (await run_to_end(rt, [rid]))[rid]
    finally:
        await rt.close()
    assert read.status == "failed"
    assert read.error_stage == "video_generation"
    assert "simulated generation failure" in (read.error_message or "")
    assert read.error_details is not None
    assert read.error_details["code"] == 13


class HangingRetrieval:
    """Retrieval whose first call never answers; later calls answer at once."""

    name = "hanging"

    def __init__(self) -> None:
        self.calls = 0

    async def retrieve(
        self,
        query: str,
        k: int = 5,
        *,
        objective: str | None = None,
        query_embedding: Sequence[float] | None = None,
    ) -> list[RetrievedChunk]:
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(3600)
        return [
            RetrievedChunk(i, 1, i, "Tides", f"passage about {query}", "Tides", "test", "CC0-1.0", None, 1.0)
            for i in range(k)
        ]


async def test_stage_attempt_is_bounded_by_its_timeout(
    settings: Settings, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt running past its stage's timeout is abandoned and retried."""
    lesson = PIPELINES["lesson"]
    quick = dataclasses.replace(lesson.stage("rag_retrieval"), timeout_seconds=0.2)
    stages = tuple(quick if s.name == "rag_retrieval" else s for s in lesson.stages)
    monkeypatch.setitem(PIPELINES, "lesson", Pipeline("lesson", stages))
    retrieval = HangingRetrieval()
    backends = dataclasses.replace(build_backends(settings, runtime.database), retrieval=retrieval)
    [rid] = await submit(runtime, pipeline="lesson", parameters={"topic": "tides"})
    read = (await run_to_end(runtime, [rid], backends=backends))[rid]

    assert read.status == "completed", read.error_message
    assert next(s for s in read.stages if s.name == "rag_retrieval").attempts == 2
    [retry] = await events_of(runtime, rid, "retry")
    assert retry.message == "rag_retrieval attempt timed out after 0.2 s"
    assert retrieval.calls == 2


async def test_callback_never_carries_a_status_the_run_has_moved_past(runtime: Runtime) -> None:
    """When the run's terminal status is still journaled (the row still says generating), the callback
    carries the run's final status, not the stale row."""
    with CallbackServer() as callback:
        [rid] = await submit(runtime, parameters={"callback_url": callback.url})
        await runtime.tracker.start_request(rid)
        [item] = await WorkRepository(runtime.database).claim("w", 1, 30)
        state = RunState.from_read(item, await runtime.queries.get_request(rid), PIPELINES["veo"].outputs)
        state.final_status = RequestStatus.COMPLETED
        state.video_urls = ["http://media.test/x.mp4"]
        services = build_pipeline(runtime)
        try:
            await services.runner.bodies.notification(state, 1)
        finally:
            await services.aclose()
    [delivery] = callback.deliveries
    assert delivery.headers["x-reeltrace-event"] == "request.completed"
    body = json.loads(delivery.body)
    assert (body["status"], body["video_urls"]) == ("completed", ["http://media.test/x.mp4"])
