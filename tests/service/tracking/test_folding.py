"""A run's consecutive writes are sent as one statement, all or none, and before any call out."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from service.errors import InvalidStatusTransition
from service.runtime import Runtime
from service.tracking.fence import Claim, holding
from service.worker.repository import WorkRepository
from tests.support.pipelines import run_stages
from tests.support.sql import sql_engine
from tests.support.workers import count_events, run_to_end, submit


async def _statements_of(runtime: Runtime, rid: uuid.UUID) -> dict[tuple[str, str | None], str]:
    """Each event of the request, by (type, stage), with the transaction that wrote it."""
    async with sql_engine(runtime).connect() as conn:
        rows = await conn.execute(
            text("SELECT event_type, stage_name, xmin::text FROM request_events WHERE request_id = :r"),
            {"r": rid},
        )
        return {(row[0], row[1]): row[2] for row in rows}


async def test_a_stage_completion_and_the_next_start_land_in_one_statement(runtime: Runtime) -> None:
    """Through a whole veo run, a stage's completion is written with the next stage's start, and
    the ending with the last stage and the skipped notification: far fewer statements than changes."""
    [rid] = await submit(runtime)
    await run_to_end(runtime, [rid])
    written = await _statements_of(runtime, rid)
    first, second, *_, last = run_stages("veo")
    assert written[("stage_completed", first)] == written[("stage_started", second)]
    assert (
        written[("stage_completed", last)]
        == written[("request_completed", None)]
        == written[("stage_skipped", "notification")]
    )
    # At most one statement a stage (each sent before the stage's call out) and one for the ending.
    run = {xid for key, xid in written.items() if key != ("request_created", None)}
    assert len(run) <= len(run_stages("veo")) + 1 < len(written) - 1


async def test_the_last_write_of_a_run_gives_up_its_lease(runtime: Runtime) -> None:
    """A finished run's lease is cleared by its last write: no request is left leased."""
    [rid] = await submit(runtime)
    await run_to_end(runtime, [rid])
    async with sql_engine(runtime).connect() as conn:
        owner = (
            await conn.execute(text("SELECT lease_owner FROM video_requests WHERE id = :r"), {"r": rid})
        ).scalar_one()
    assert owner is None


async def _claimed(runtime: Runtime) -> tuple[uuid.UUID, Claim]:
    [rid] = await submit(runtime)
    [item] = await WorkRepository(runtime.database).claim("folding-test", 1, 30)
    return rid, Claim(rid, item.claim_generation)


async def test_folded_writes_are_sent_before_the_run_calls_out(runtime: Runtime) -> None:
    """A write-ahead event folded by a run is in PostgreSQL once the pre-call claim check returns."""
    rid, claim = await _claimed(runtime)
    with holding(claim):
        async with runtime.tracker.folding(rid):
            await runtime.tracker.log_event(rid, "generation_submitting", "starting")
            assert await count_events(runtime, "generation_submitting") == 0  # folded, not sent
            await runtime.tracker.hold_claim(rid)
            assert await count_events(runtime, "generation_submitting") == 1


async def test_a_step_applies_all_of_its_changes_or_none(runtime: Runtime) -> None:
    """A step whose status change is not allowed writes none of its parts (the stage start too)."""
    rid, claim = await _claimed(runtime)

    async def run() -> None:
        with holding(claim):
            async with runtime.tracker.folding(rid):
                await runtime.tracker.start_stage(rid, "validation")
                await runtime.tracker.complete_request(rid, [])  # pending -> completed is not allowed

    with pytest.raises(InvalidStatusTransition):
        await run()
    read = await runtime.queries.get_request(rid)
    assert read.status == "pending"
    assert {s.name: s.status for s in read.stages}["validation"] == "pending"
    assert await count_events(runtime, "stage_started") == 0


async def test_a_stage_started_and_ended_in_one_step_keeps_both_times(runtime: Runtime) -> None:
    """A stage whose start and completion go in the same statement gets its start time, its end
    time and the duration between them, with both events."""
    rid, claim = await _claimed(runtime)
    with holding(claim):
        async with runtime.tracker.folding(rid):
            await runtime.tracker.start_request(rid)
            await runtime.tracker.start_stage(rid, "validation", 1)
            await runtime.tracker.complete_stage(rid, "validation", {"checked": ["prompt"]})
    stage = {s.name: s for s in (await runtime.queries.get_request(rid)).stages}["validation"]
    assert stage.status == "completed"
    assert stage.started_at is not None
    assert stage.completed_at is not None
    assert stage.started_at <= stage.completed_at
    elapsed = (stage.completed_at - stage.started_at).total_seconds()
    assert stage.duration_seconds == pytest.approx(elapsed, abs=0.001)
    assert stage.attempts == 1
    written = await _statements_of(runtime, rid)
    assert written[("stage_started", "validation")] == written[("stage_completed", "validation")]
