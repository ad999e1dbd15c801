"""The claim fence: a run's writes apply only while its claim generation is the request's."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text

from service.errors import ClaimLost
from service.request_states import StageStatus
from service.runtime import Runtime
from service.tracking.fence import Claim, holding
from service.tracking.write_values import EventWrite, StageChange
from service.tracking.writer import utcnow
from service.worker.repository import WorkRepository
from tests.support.sql import sql_engine
from tests.support.workers import count_events, submit


async def taken_over(runtime: Runtime) -> tuple[uuid.UUID, int, int]:
    """A request claimed by a first worker, whose lease expired and was claimed by a second."""
    [rid] = await submit(runtime)
    repo = WorkRepository(runtime.database)
    [first] = await repo.claim("first", 1, 30)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("UPDATE video_requests SET lease_expires_at = now() - interval '1 second'"))
    [second] = await repo.claim("second", 1, 30)
    return rid, first.claim_generation, second.claim_generation


async def test_each_claim_moves_the_fence(runtime: Runtime) -> None:
    """A takeover hands the new owner a newer claim generation than the first owner's."""
    _, first, second = await taken_over(runtime)
    assert second == first + 1


async def test_write_of_a_lost_claim_is_refused_and_stops_its_run(runtime: Runtime) -> None:
    """A stage write under the first owner's generation is refused (nothing written) and ends its run."""
    rid, first, _ = await taken_over(runtime)

    async def stale_run() -> None:
        with holding(Claim(rid, first)):
            await runtime.tracker.start_stage(rid, "validation")
            await asyncio.sleep(3600)  # never reached: the refused write ends the run

    [outcome] = await asyncio.gather(asyncio.create_task(stale_run()), return_exceptions=True)
    assert isinstance(outcome, ClaimLost | asyncio.CancelledError)
    assert await count_events(runtime, "stage_started") == 0
    stages = {s.name: s.status for s in (await runtime.queries.get_request(rid)).stages}
    assert stages["validation"] == "pending"


async def test_write_of_the_current_claim_applies(runtime: Runtime) -> None:
    """The new owner's writes apply as usual."""
    rid, _, second = await taken_over(runtime)
    with holding(Claim(rid, second)):
        await runtime.tracker.start_request(rid)
        await runtime.tracker.start_stage(rid, "validation")
    assert (await runtime.queries.get_request(rid)).status == "generating"


async def test_lost_claim_refuses_the_external_call_check(runtime: Runtime) -> None:
    """The check made before each external call raises ClaimLost for a run whose claim was taken."""
    rid, first, _ = await taken_over(runtime)

    async def stale_run() -> None:
        with holding(Claim(rid, first)):
            await runtime.tracker.hold_claim(rid)

    [outcome] = await asyncio.gather(asyncio.create_task(stale_run()), return_exceptions=True)
    assert isinstance(outcome, ClaimLost | asyncio.CancelledError)


async def test_replayed_write_of_a_lost_claim_is_rejected(runtime: Runtime) -> None:
    """A journaled write made under a claim since taken over is rejected by the replay, not applied
    over the new owner's state."""
    rid, first, _ = await taken_over(runtime)
    now = utcnow()
    stale = StageChange(
        request_id=rid,
        stage_name="validation",
        status=StageStatus.COMPLETED,
        at=now,
        fence=first,
        event=EventWrite(request_id=rid, event_type="stage_completed", created_at=now),
    )
    await asyncio.to_thread(runtime.journal.append, stale)
    report = await runtime.tracker.backfill()
    assert (report.applied, report.rejected) == (0, 1)
    assert "ClaimLost" in report.rejected_reasons[0]
    stages = {s.name: s.status for s in (await runtime.queries.get_request(rid)).stages}
    assert stages["validation"] == "pending"


async def test_unfenced_write_applies(runtime: Runtime) -> None:
    """A write from outside any run (an operator's) is not fenced."""
    rid, _, _ = await taken_over(runtime)
    await runtime.tracker.start_request(rid)
    assert (await runtime.queries.get_request(rid)).status == "generating"
