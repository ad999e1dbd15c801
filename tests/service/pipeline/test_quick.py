"""Quick: a worker runs a veo request to completion."""

from __future__ import annotations

import asyncio

from service.pipeline.assembly import build_pipeline
from service.runtime import Runtime
from service.tracking.tracker import NewRequest
from service.worker.worker import Worker


async def test_worker_completes(runtime: Runtime) -> None:
    """A submitted request is claimed and completed with video URLs."""
    created = await runtime.tracker.create_request(NewRequest(user_id="u", prompt="a fox"))
    services = build_pipeline(runtime)
    worker = Worker(runtime, services.runner)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    for _ in range(200):
        read = await runtime.queries.get_request(created.id)
        if read.status.is_terminal:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    await services.aclose()
    print(read.model_dump_json(indent=1))
    events = await runtime.queries.events(created.id)
    print([e.event_type for e in events])
    assert read.status == "completed", read.error_message
    assert read.video_urls
