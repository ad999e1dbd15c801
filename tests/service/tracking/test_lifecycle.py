"""Request Lifecycle Persistence: what each step of a request stores."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text

from service.request_states import RequestStatus, StageStatus, timeout_message
from service.runtime import Runtime
from service.video_request import VideoRequest
from telemetry.correlation import is_correlation_id
from tests.support.sql import sql_engine

NEW = VideoRequest(
    user_id="123456789012345678",
    guild_id="guild-1",
    channel_id="chan-9",
    prompt="A red panda sipping tea in the rain, cinematic",
    duration_seconds=6,
    aspect_ratio="9:16",
    resolution="1080p",
    generate_audio=True,
)


async def row(runtime: Runtime, request_id: uuid.UUID) -> dict[str, object]:
    async with sql_engine(runtime).connect() as conn:
        result = await conn.execute(text("SELECT * FROM video_requests WHERE id = :id"), {"id": request_id})
        return dict(result.mappings().one())


async def test_creation_stores_pending_request_with_context_and_parameters(runtime: Runtime) -> None:
    """A created request is pending and stores the Discord context, parameters and created_at."""
    created = await runtime.tracker.create_request(NEW)
    stored = await row(runtime, created.id)
    assert isinstance(created.id, uuid.UUID)
    assert created.created
    assert stored["status"] == "pending"
    assert (stored["user_id"], stored["guild_id"], stored["channel_id"]) == (
        "123456789012345678",
        "guild-1",
        "chan-9",
    )
    assert (stored["prompt"], stored["duration_seconds"], stored["aspect_ratio"]) == (NEW.prompt, 6, "9:16")
    assert (stored["resolution"], stored["generate_audio"]) == ("1080p", True)
    assert stored["created_at"] == created.created_at
    assert is_correlation_id(str(stored["correlation_id"]))


async def test_creation_makes_one_pending_stage_row_per_pipeline_stage(runtime: Runtime) -> None:
    """The stage rows of the request's pipeline exist, in order, as pending, from creation on."""
    created = await runtime.tracker.create_request(NEW.model_copy(update={"pipeline": "lesson"}))
    read = await runtime.queries.get_request(created.id)
    assert [s.name for s in read.stages] == [
        "validation", "rag_retrieval", "script_generation", "video_generation", "video_processing", "notification"
    ]  # fmt: skip
    assert {s.status for s in read.stages} == {StageStatus.PENDING}


async def test_generating_sets_started_at_and_stores_operation(runtime: Runtime) -> None:
    """Moving to generating sets started_at; the operation name and gcs_prefix are stored."""
    created = await runtime.tracker.create_request(NEW)
    result = await runtime.tracker.start_request(created.id)
    await runtime.tracker.record_operation(
        created.id, "projects/p/locations/l/publishers/google/models/m/operations/op1", "gs://b/requests/x/"
    )
    stored = await row(runtime, created.id)
    assert result is not None
    assert stored["status"] == "generating"
    assert stored["started_at"] == result.started_at
    assert stored["started_at"] >= stored["created_at"]  # type: ignore[operator]
    assert stored["operation_name"] == "projects/p/locations/l/publishers/google/models/m/operations/op1"
    assert stored["gcs_prefix"] == "gs://b/requests/x/"


async def test_completion_stores_urls_and_duration(runtime: Runtime) -> None:
    """Completion stores video_urls, completed_at and duration_ms = completed_at - started_at."""
    created = await runtime.tracker.create_request(NEW)
    await runtime.tracker.start_request(created.id)
    await runtime.tracker.complete_request(created.id, ["https://cdn/v0.mp4", "https://cdn/v1.mp4"])
    stored = await row(runtime, created.id)
    assert stored["status"] == "completed"
    assert stored["video_urls"] == ["https://cdn/v0.mp4", "https://cdn/v1.mp4"]
    elapsed = stored["completed_at"] - stored["started_at"]  # type: ignore[operator]
    assert stored["duration_ms"] == int(elapsed / timedelta(milliseconds=1))


async def test_failure_stores_sanitized_error_and_partial_duration(runtime: Runtime) -> None:
    """Failure stores a sanitized error_message, the stage, completed_at and the partial duration."""
    created = await runtime.tracker.create_request(NEW)
    await runtime.tracker.start_request(created.id)
    raw = "upstream said no: Bearer ya29.secret-token\nTraceback (most recent call last):\n  File x"
    await runtime.tracker.fail_request(
        created.id, raw, error_stage="video_generation", error_details={"code": 13}
    )
    stored = await row(runtime, created.id)
    assert stored["status"] == "failed"
    assert stored["error_message"] == "upstream said no: Bearer [REDACTED]"
    assert stored["error_stage"] == "video_generation"
    assert stored["error_details"] == {"code": 13}
    assert stored["completed_at"] is not None
    assert stored["duration_ms"] is not None
    assert stored["duration_ms"] >= 0  # type: ignore[operator]


async def test_timeout_stores_the_spec_message(runtime: Runtime) -> None:
    """A timeout ends as `timeout` with "Generation timed out after 5 minutes" and completed_at."""
    created = await runtime.tracker.create_request(NEW)
    await runtime.tracker.start_request(created.id)
    await runtime.tracker.timeout_request(created.id, timeout_message(300), error_stage="video_generation")
    stored = await row(runtime, created.id)
    assert stored["status"] == RequestStatus.TIMEOUT
    assert stored["error_message"] == "Generation timed out after 5 minutes"
    assert stored["completed_at"] is not None


def test_timeout_message_follows_the_setting() -> None:
    """The figure in the timeout message follows the configured timeout."""
    assert timeout_message(300) == "Generation timed out after 5 minutes"
    assert timeout_message(60) == "Generation timed out after 1 minute"
    assert timeout_message(90) == "Generation timed out after 90 seconds"
    assert timeout_message(0.5) == "Generation timed out after 0.5 seconds"


async def test_duplicate_uuid_returns_the_existing_request(runtime: Runtime) -> None:
    """Creating with an existing UUID logs a warning and returns the original request."""
    request_id = uuid.uuid4()
    first = await runtime.tracker.create_request(NEW.model_copy(update={"request_id": request_id}))
    again = await runtime.tracker.create_request(
        NEW.model_copy(update={"request_id": request_id, "prompt": "other"})
    )
    assert first.created
    assert not again.created
    assert (again.id, again.correlation_id) == (first.id, first.correlation_id)
    assert (await row(runtime, request_id))["prompt"] == NEW.prompt


async def test_every_step_writes_an_event(runtime: Runtime) -> None:
    """Creation, start, stage changes and completion each leave an event, in order."""
    t = runtime.tracker
    created = await t.create_request(NEW)
    await t.start_request(created.id)
    await t.start_stage(created.id, "validation")
    await t.complete_stage(created.id, "validation")
    await t.complete_request(created.id, ["u"])
    events = await runtime.queries.events(created.id)
    assert [e.event_type for e in events] == [
        "request_created", "request_started", "stage_started", "stage_completed", "request_completed"
    ]  # fmt: skip
    assert all(e.source_service == "test" and e.source_host for e in events)
