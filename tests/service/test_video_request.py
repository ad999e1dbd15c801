"""The request value: its stored form, read back as it was written, and its rules."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from service.tracking.write_values import CreateRequest, EventWrite
from service.video_request import COLUMNS, VideoRequest, problems

RID = uuid.UUID("3f1b7c2e-0000-4000-8000-000000000001")
LESSON = VideoRequest(
    user_id="u",
    guild_id="g",
    prompt="a diagram of a leaf",
    pipeline="lesson",
    topic="photosynthesis",
    callback_url="https://hooks.example.com/done",  # type: ignore[arg-type]
    sample_count=2,
    request_id=RID,
)


def create(request: VideoRequest) -> CreateRequest:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    event = EventWrite(request_id=RID, event_type="request_created", created_at=at)
    return CreateRequest(
        id=RID, correlation_id="vvd_1_00000000", request=request, trace_id=None, traceparent=None,
        created_at=at, stages=[], event=event,
    )  # fmt: skip


def test_record_keeps_columns_apart_and_the_rest_in_parameters() -> None:
    """A record holds each column, and only the optional fields that were set, in JSON form."""
    record = LESSON.to_record()
    assert [name for name in record if name != "parameters"] == list(COLUMNS)
    assert record["parameters"] == {
        "callback_url": "https://hooks.example.com/done",
        "topic": "photosynthesis",
        "sample_count": 2,
    }


def test_a_record_reads_back_as_the_request() -> None:
    """A request stored as its record and read back from the row is the request submitted."""
    row = {**LESSON.to_record(), "id": RID}
    back = VideoRequest.from_record(row)
    assert back.to_record() == LESSON.to_record()
    assert back.request_id == RID


def test_create_write_is_flat_json() -> None:
    """The create write's JSON holds the record's fields at its top level, as the create function reads them."""
    document = json.loads(create(LESSON).model_dump_json())
    assert "request" not in document
    assert document["user_id"] == "u"
    assert document["parameters"]["topic"] == "photosynthesis"


def test_create_write_reads_back_from_flat_json() -> None:
    """A journaled create (flat JSON) reads back with the request it was written with."""
    write = create(LESSON)
    again = CreateRequest.model_validate_json(write.model_dump_json())
    assert again.request.to_record() == LESSON.to_record()


def test_differing_names_columns_then_optional_fields() -> None:
    """A repeat with other values names the differing fields, columns first, then optional ones."""
    stored = {**LESSON.to_record(), "id": RID}
    other = LESSON.model_copy(update={"prompt": "a tree", "pipeline": "veo", "topic": None})
    assert other.differing(stored) == ["pipeline", "prompt", "topic"]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"prompt": "  "}, "prompt is empty"),
        ({"prompt": "x" * 2001}, "prompt is longer than 2000 characters"),
        ({"duration_seconds": 5}, "duration_seconds must be one of [4, 6, 8]"),
        ({"aspect_ratio": "1:1"}, "aspect_ratio must be one of ['16:9', '9:16']"),
        ({"resolution": "4k"}, "resolution must be one of ['1080p', '720p']"),
        ({"pipeline": "lesson"}, "the lesson pipeline needs a topic"),
    ],
)
def test_problems_name_the_broken_rule(fields: dict[str, object], problem: str) -> None:
    """A stored request that breaks a rule the API enforces is told which one."""
    request = VideoRequest.model_construct(**{"user_id": "u", "prompt": "a fox", **fields})
    assert problems(request) == [problem]


def test_a_request_the_api_accepts_has_no_problem() -> None:
    """What the API validated passes the validation stage's check of the same rules."""
    assert problems(LESSON) == []
