"""Running real workers in a test: submit requests, run a worker, wait for terminal statuses."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text

from service.backends.factory import Backends
from service.runtime import Runtime
from service.tracking.schemas import EventRead, RequestRead
from service.video_request import VideoRequest
from service.wiring import PipelineServices, build_pipeline
from service.worker.worker import Worker
from tests.support.sql import sql_engine

TERMINAL = ("completed", "failed", "timeout")


async def submit(runtime: Runtime, count: int = 1, **fields: Any) -> list[uuid.UUID]:
    """Create `count` requests (a veo request with a short prompt unless `fields` say otherwise).

    The values are not checked, as the API would: a test may store a request that only
    the validation stage refuses. `parameters` are request fields too, given apart.
    """
    values: dict[str, Any] = {"user_id": "tester", "prompt": "a red fox running through snow", **fields}
    values |= values.pop("parameters", {})
    ids = []
    for _ in range(count):
        created = await runtime.tracker.create_request(VideoRequest.model_construct(**values))
        ids.append(created.id)
    return ids


async def statuses(runtime: Runtime, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    async with sql_engine(runtime).connect() as conn:
        rows = await conn.execute(
            text("SELECT id, status::text FROM video_requests WHERE id = ANY(:ids)"), {"ids": list(ids)}
        )
        return {row[0]: row[1] for row in rows}


async def wait_terminal(runtime: Runtime, ids: list[uuid.UUID], within: float = 20.0) -> dict[uuid.UUID, str]:
    """Poll until every request is terminal; fails the test past `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = await statuses(runtime, ids)
        if len(found) == len(ids) and all(s in TERMINAL for s in found.values()):
            return found
        if time.monotonic() > deadline:
            waiting = {str(k): v for k, v in found.items() if v not in TERMINAL}
            raise AssertionError(f"requests not terminal after {within} s: {waiting}")
        await asyncio.sleep(0.05)


async def wait_for(predicate: Any, within: float = 20.0, what: str = "condition") -> None:
    """Await an async predicate until it is true; fails the test past `within` seconds."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached after {within} s")
        await asyncio.sleep(0.05)


async def count_events(runtime: Runtime, event_type: str) -> int:
    async with sql_engine(runtime).connect() as conn:
        result = await conn.execute(
            text("SELECT count(*) FROM request_events WHERE event_type = :t"), {"t": event_type}
        )
        return int(result.scalar_one())


async def events_of(
    runtime: Runtime, request_id: uuid.UUID, event_type: str | None = None
) -> list[EventRead]:
    events = await runtime.queries.events(request_id)
    return [e for e in events if event_type is None or e.event_type == event_type]


async def wait_idle(worker: Worker, within: float = 20.0) -> None:
    """Wait until the worker has no run in flight."""

    async def idle() -> bool:
        return not worker.active

    await wait_for(idle, within, "worker idle")


@asynccontextmanager
async def running_worker(
    runtime: Runtime, *, backends: Backends | None = None, worker_id: str | None = None
) -> AsyncIterator[tuple[Worker, PipelineServices]]:
    """A worker running in this event loop until the block ends (then stopped cleanly)."""
    services = build_pipeline(runtime, backends)
    worker = Worker(runtime, services.runner, worker_id=worker_id)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker, services
    finally:
        stop.set()
        await task
        await services.aclose()


async def run_to_end(
    runtime: Runtime,
    ids: list[uuid.UUID],
    *,
    backends: Backends | None = None,
    within: float = 20.0,
) -> dict[uuid.UUID, RequestRead]:
    """Run a worker until every request in `ids` is terminal; returns their final reads."""
    async with running_worker(runtime, backends=backends) as (worker, _):
        await wait_terminal(runtime, ids, within)
        # The notification stage runs after the terminal status: let the runs end.
        await wait_idle(worker, within)
    return {rid: await runtime.queries.get_request(rid) for rid in ids}
