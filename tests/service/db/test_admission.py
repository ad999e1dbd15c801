"""The run gate: no more runs use the database at once than the pool has connections."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from service.db.admission import RunGate, outside_gate
from service.runtime import Runtime
from service.settings import Settings
from tests.support.sql import sql_engine
from tests.support.workers import run_to_end, submit


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Workers claim quickly."""
    return settings.model_copy(update={"worker_poll_seconds": 0.02})


class Probe:
    def __init__(self) -> None:
        self.inside = 0
        self.most = 0

    async def work(self, seconds: float = 0.01) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)
        await asyncio.sleep(seconds)
        self.inside -= 1


async def test_admits_at_most_its_permits() -> None:
    """Twenty runs through a gate of three: never more than three inside at once, and all get through."""
    gate = RunGate(3)
    probe = Probe()

    async def run() -> None:
        async with gate.admitted():
            await probe.work()

    await asyncio.gather(*(run() for _ in range(20)))
    assert probe.most == 3
    assert probe.inside == 0


async def test_waiting_outside_the_gate_lets_others_in() -> None:
    """A run waiting outside the gate (polling, an external call) does not hold a permit meanwhile."""
    gate = RunGate(1)
    order: list[str] = []
    polling = asyncio.Event()

    async def poller() -> None:
        async with gate.admitted():
            order.append("poller in")
            async with outside_gate():
                polling.set()
                await asyncio.sleep(0.05)
            order.append("poller back")

    async def other() -> None:
        await polling.wait()
        async with gate.admitted():
            order.append("other in")

    await asyncio.gather(poller(), other())
    assert order == ["poller in", "other in", "poller back"]


async def test_cancelled_wait_gives_no_permit_back_twice() -> None:
    """A run cancelled while waiting to come back through the gate leaves the permit count intact."""
    gate = RunGate(1)
    inside = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with gate.admitted():
            inside.set()
            await release.wait()

    async def returning() -> None:
        async with gate.admitted(), outside_gate():
            await asyncio.sleep(0)
            await inside.wait()  # meanwhile the holder took the only permit

    returner = asyncio.create_task(returning())
    await asyncio.sleep(0)
    held = asyncio.create_task(holder())
    await inside.wait()
    await asyncio.sleep(0.01)
    returner.cancel()  # it is stuck re-acquiring the permit
    with pytest.raises(asyncio.CancelledError):
        await returner
    release.set()
    await held
    probe = Probe()

    async def run() -> None:
        async with gate.admitted():
            await probe.work()

    await asyncio.gather(*(run() for _ in range(5)))
    assert probe.most == 1


async def test_outside_gate_without_a_run_is_a_no_op() -> None:
    """Code that is not part of a run runs its outside_gate block and neither frees nor takes a permit."""
    gate = RunGate(1)
    inside = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with gate.admitted():
            inside.set()
            await release.wait()

    held = asyncio.create_task(holder())
    await inside.wait()
    ran = False
    async with outside_gate():
        ran = True
        room_within = gate.room()
    assert ran
    assert room_within == 0  # the holder's permit was not handed to anyone
    assert gate.room() == 0
    release.set()
    await held
    assert gate.room() == 1


async def test_worker_with_a_one_connection_pool(settings: Settings, database_url: str) -> None:
    """Twenty runs on a one-connection pool all complete and none falls back to the journal."""
    tiny = settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0})
    rt = Runtime.build(tiny, database_url, source_service="test")
    try:
        ids = await submit(rt, 20)
        reads = await run_to_end(rt, ids, within=40)
        assert {r.status for r in reads.values()} == {"completed"}
        assert not rt.journal.has_pending()
        async with sql_engine(rt).connect() as conn:
            claims = (await conn.execute(text("SELECT max(claims) FROM video_requests"))).scalar_one()
        assert claims == 1
    finally:
        await rt.close()


async def test_returning_runs_go_before_new_ones() -> None:
    """A run coming back from a wait is let in before runs that have not started."""
    gate = RunGate(1)
    order: list[str] = []
    outside = asyncio.Event()

    async def returning() -> None:
        async with gate.admitted():
            async with outside_gate():
                outside.set()
                await asyncio.sleep(0.02)
            order.append("returning back")

    async def new(name: str) -> None:
        await outside.wait()
        async with gate.admitted():
            order.append(f"{name} in")
            await asyncio.sleep(0.05)

    await asyncio.gather(returning(), new("first"), new("second"))
    assert order == ["first in", "returning back", "second in"]
