"""The work queue's statements on a real PostgreSQL (the run behaviour is in test_worker.py)."""

from __future__ import annotations

from service.runtime import Runtime
from service.video_request import VideoRequest
from service.worker.repository import WorkRepository


async def test_a_claim_reads_back_every_field_of_the_request(runtime: Runtime) -> None:
    """A claimed request is the submitted value: its column fields (none left at its default
    but the pipeline) and its `parameters` fields."""
    submitted = VideoRequest(
        user_id="u-1",
        guild_id="g-1",
        channel_id="c-1",
        prompt="a lighthouse in a storm",
        duration_seconds=6,
        aspect_ratio="9:16",
        resolution="1080p",
        generate_audio=True,
        negative_prompt="people",
        seed=42,
        sample_count=2,
    )
    created = await runtime.tracker.create_request(submitted)
    [item] = await WorkRepository(runtime.database).claim("me", 1, 30)
    assert item.id == created.id
    assert item.request.to_record() == submitted.to_record()
