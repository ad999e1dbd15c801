"""Resuming a request another run left half-way: crash windows around the generation start."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from pathlib import Path

from service.backends.factory import build_backends
from service.errors import DatabaseUnavailable
from service.runtime import Runtime
from service.settings import Settings
from service.tracking.queries import RequestQueries
from service.tracking.schemas import EventRead
from telemetry.metrics import get_metrics
from tests.support.backends import flaky_backends, generation_request
from tests.support.workers import events_of, run_to_end, submit


def operations(settings: Settings, rid: uuid.UUID) -> list[tuple[str, str]]:
    with sqlite3.connect(Path(settings.data_dir) / "sim" / "operations.sqlite3") as db:
        rows = db.execute("SELECT name, idempotency_key FROM operations WHERE request_id = ?", (str(rid),))
        return [(r[0], r[1]) for r in rows]


async def left_in_generation(runtime: Runtime) -> uuid.UUID:
    """A request whose run died in attempt 1 of video_generation, before any operation was recorded."""
    [rid] = await submit(runtime)
    await runtime.tracker.start_request(rid)
    await runtime.tracker.start_stage(rid, "validation")
    await runtime.tracker.complete_stage(rid, "validation")
    await runtime.tracker.start_stage(rid, "video_generation", attempt=1)
    return rid


async def test_start_made_but_not_recorded_is_not_repeated(runtime: Runtime, settings: Settings) -> None:
    """A run that died between starting the operation and storing its name: the next run starts with the
    same idempotency key, so the backend hands back the same operation instead of a second one."""
    rid = await left_in_generation(runtime)
    key = f"{rid}:1"
    await runtime.tracker.log_event(
        rid, "generation_submitting", "starting", stage="video_generation", data={"idempotency_key": key}
    )
    backends = build_backends(settings, runtime.database)
    try:
        started = await backends.generation.start(
            generation_request(
                request_id=rid,
                correlation_id="vvd_0_00000000",
                prompt="a red fox running through snow",
                duration_seconds=8,
                aspect_ratio="16:9",
                resolution="720p",
                generate_audio=False,
                output_prefix=backends.storage.prefix_for(rid),
                idempotency_key=key,
            )
        )
    finally:
        await backends.aclose()

    read = (await run_to_end(runtime, [rid]))[rid]
    assert read.status == "completed", read.error_message
    assert read.operation_name == started
    assert operations(settings, rid) == [(started, key)]
    submitting = await events_of(runtime, rid, "generation_submitting")
    assert [e.data["idempotency_key"] for e in submitting] == [key, key]


class QueriesFailingOnce(RequestQueries):
    """PostgreSQL drops away for exactly one read of the write-ahead submission event."""

    failed = False

    async def latest_event(
        self, request_id: uuid.UUID, event_type: str, stage: str | None = None
    ) -> EventRead | None:
        if event_type == "generation_submitting" and not self.failed:
            self.failed = True
            raise DatabaseUnavailable("PostgreSQL is unreachable")
        return await super().latest_event(request_id, event_type, stage)


async def test_database_outage_inside_a_stage_interrupts_the_run(
    runtime: Runtime, settings: Settings
) -> None:
    """A read failing because PostgreSQL is unreachable interrupts the run (resumed later) instead of
    failing the request or its stage; each resume runs the cut-off attempt again, not a retry."""
    rid = await left_in_generation(runtime)
    flaky = QueriesFailingOnce(runtime.database)
    degraded = dataclasses.replace(runtime, queries=flaky)
    read = (await run_to_end(degraded, [rid]))[rid]

    assert flaky.failed
    assert read.status == "completed", read.error_message
    assert await events_of(runtime, rid, "stage_failed") == []
    started = await events_of(runtime, rid, "stage_started")
    assert [e.data["attempt"] for e in started if e.stage_name == "video_generation"] == [1, 1, 1]
    assert read.retry_count == 0
    assert len(await events_of(runtime, rid, "request_resumed")) == 2
    assert len(operations(settings, rid)) == 1


def retries_counted(stage: str) -> float:
    """reeltrace_stage_retries_total of a veo stage, in this process's registry."""
    value = get_metrics().registry.get_sample_value(
        "reeltrace_stage_retries_total", {"pipeline": "veo", "stage": stage}
    )
    return value or 0.0


async def test_a_resumed_attempt_is_not_counted_as_a_retry(runtime: Runtime) -> None:
    """A resumed run continues the attempt it took over (the stage's attempts stay 1), is
    marked by request_resumed, and reeltrace_stage_retries_total leaves it out."""
    rid = await left_in_generation(runtime)
    before = retries_counted("video_generation")
    read = (await run_to_end(runtime, [rid]))[rid]
    assert read.status == "completed", read.error_message
    generation = next(s for s in read.stages if s.name == "video_generation")
    assert generation.attempts == 1
    assert len(await events_of(runtime, rid, "request_resumed")) == 1
    assert await events_of(runtime, rid, "retry") == []
    assert retries_counted("video_generation") == before


async def test_a_retried_attempt_is_counted(runtime: Runtime, settings: Settings) -> None:
    """A stage attempt that fails and is retried adds one to reeltrace_stage_retries_total."""
    [rid] = await submit(runtime)
    before = retries_counted("video_generation")
    read = (await run_to_end(runtime, [rid], backends=flaky_backends(settings, failures=1)))[rid]
    assert read.status == "completed", read.error_message
    assert len(await events_of(runtime, rid, "retry")) == 1
    assert retries_counted("video_generation") == before + 1
