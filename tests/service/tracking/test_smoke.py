"""Smoke: the tracker runs a request through its lifecycle on a real PostgreSQL."""

from __future__ import annotations

from service.request_states import RequestStatus
from service.runtime import Runtime
from service.video_request import VideoRequest


async def test_lifecycle(runtime: Runtime) -> None:
    """A request goes pending -> generating -> completed with stages and events."""
    t = runtime.tracker
    created = await t.create_request(
        VideoRequest(user_id="u1", guild_id="g1", prompt="a cat on a skateboard")
    )
    assert created.created
    await t.start_request(created.id)
    await t.start_stage(created.id, "validation")
    await t.complete_stage(created.id, "validation")
    res = await t.complete_request(created.id, ["https://x/v.mp4"])
    assert res is not None
    assert res.duration_ms is not None
    read = await runtime.queries.get_request(created.correlation_id)
    assert read.status == RequestStatus.COMPLETED
    assert read.stages[0].status == "completed"
    events = await runtime.queries.events(created.id)
    assert [e.event_type for e in events][:2] == ["request_created", "request_started"]
