"""The generation timeout: polling past REELTRACE_GENERATION_TIMEOUT_SECONDS ends the request as timeout."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text

from service.backends.factory import build_backends
from service.runtime import Runtime
from service.settings import Settings
from tests.support.backends import FlakyGeneration, flaky_backends, generation_request
from tests.support.sql import sql_engine
from tests.support.workers import run_to_end, running_worker, statuses, submit


async def test_generation_timeout_ends_request_as_timeout(settings: Settings, database_url: str) -> None:
    """An operation that never finishes ends the request as timeout, with the setting's figure in the message."""
    rt = Runtime.build(
        settings.model_copy(update={"sim_timeout_rate": 1.0, "generation_timeout_seconds": 0.4}),
        database_url,
        source_service="test",
    )
    try:
        [rid] = await submit(rt)
        read = (await run_to_end(rt, [rid]))[rid]
    finally:
        await rt.close()

    assert read.status == "timeout"
    assert read.error_message == "Generation timed out after 0.4 seconds"
    assert read.error_stage == "video_generation"
    assert read.error_details == {"code": "timeout"}
    stages = {s.name: s for s in read.stages}
    assert stages["video_generation"].status == "failed"
    assert stages["video_generation"].attempts == 1  # a timeout is not retried
    assert stages["video_processing"].status == "skipped"
    assert read.duration_ms is not None
    assert read.duration_ms >= 400


async def _stored_never_ending_generation(runtime: Runtime, started_ago_seconds: float) -> uuid.UUID:
    """A generating request whose operation (never finishing) was started `started_ago_seconds` ago."""
    [rid] = await submit(runtime)
    backends = build_backends(runtime.settings.model_copy(update={"sim_timeout_rate": 1.0}), runtime.database)
    try:
        prefix = backends.storage.prefix_for(rid)
        name = await backends.generation.start(
            generation_request(
                request_id=rid,
                correlation_id="vvd_0_00000000",
                prompt="a red fox",
                duration_seconds=8,
                aspect_ratio="16:9",
                resolution="720p",
                generate_audio=False,
                output_prefix=prefix,
                idempotency_key=f"{rid}:1",
            )
        )
    finally:
        await backends.aclose()
    tracker = runtime.tracker
    await tracker.start_request(rid)
    await tracker.start_stage(rid, "validation")
    await tracker.complete_stage(rid, "validation")
    await tracker.start_stage(rid, "video_generation")
    await tracker.record_operation(rid, name, prefix)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text(
                "UPDATE request_stages SET started_at = now() - make_interval(secs => :ago)"
                " WHERE request_id = :id AND stage_name = 'video_generation'"
            ),
            {"id": rid, "ago": started_ago_seconds},
        )
    return rid


async def test_default_timeout_message_says_five_minutes(runtime: Runtime, settings: Settings) -> None:
    """With the default 300 s, a generation started 301 s ago (by a worker since gone) times out "after 5 minutes"."""
    assert settings.generation_timeout_seconds == 300
    rid = await _stored_never_ending_generation(runtime, 301)
    read = (await run_to_end(runtime, [rid]))[rid]

    assert read.status == "timeout"
    assert read.error_message == "Generation timed out after 5 minutes"
    assert read.error_stage == "video_generation"


async def test_timeout_counts_from_the_first_start(runtime: Runtime) -> None:
    """A resumed generation keeps the time already spent: 200 s ago + 300 s budget is not yet a timeout."""
    rid = await _stored_never_ending_generation(runtime, 200)
    async with running_worker(runtime):
        await asyncio.sleep(0.5)
        assert (await statuses(runtime, [rid]))[rid] == "generating"
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text(
                "UPDATE request_stages SET started_at = started_at - interval '101 seconds'"
                " WHERE request_id = :id AND stage_name = 'video_generation'"
            ),
            {"id": rid},
        )
    read = (await run_to_end(runtime, [rid]))[rid]
    assert read.status == "timeout"


async def test_retried_generation_shares_the_timeout(settings: Settings, database_url: str) -> None:
    """The timeout counts from the stage's first attempt: a retry after a slow failure does not get a fresh budget."""
    quick = settings.model_copy(update={"sim_timeout_rate": 1.0, "generation_timeout_seconds": 1.0})
    rt = Runtime.build(quick, database_url, source_service="test")
    try:
        [rid] = await submit(rt)
        backends = flaky_backends(quick, failures=1, fail_after=1.5)
        read = (await run_to_end(rt, [rid], backends=backends))[rid]
    finally:
        await rt.close()

    assert read.status == "timeout"
    generation = next(s for s in read.stages if s.name == "video_generation")
    assert generation.attempts == 2
    # The first attempt spent 1.5 s of the 1 s budget: the second starts its operation,
    # polls it once and finds no time left. A fresh budget would keep it polling for 1 s.
    flaky = backends.generation
    assert isinstance(flaky, FlakyGeneration)
    assert (flaky.start_calls, flaky.poll_calls) == (2, 1)
