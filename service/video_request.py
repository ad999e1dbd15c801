"""The video request: its fields and their rules, in one place.

A submission is validated once, at the edge: the API's body (`RequestCreate`) is this
model, so its OpenAPI schema comes from here. The same value then flows on unchanged:
the tracker stores it (`to_record`: its own columns, the rest in `parameters`), a
worker reads it back from its row (`from_record`, not validated again: the row was
checked when it was written), and the backends receive it. The validation stage
checks a stored request against these same rules (`problems`), for rows that did not
come through the API.

Adding a field (README, "Adding a request field"): a field without a column of its own
travels in `parameters`, with nothing else to change. One with its own column is named
in `COLUMNS` and needs its column in `service/db/models.py` and in the create
function's INSERT (`migrations/functions/`); its migration is then written by
`alembic revision --autogenerate`, and a claim reads it back with the whole row.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints, ValidationInfo, field_validator

# PostgreSQL text cannot hold NUL; identifiers hold no control characters at all.
NO_NUL = r"^[^\x00]*$"
IDENTIFIER = r"^[^\x00-\x1f\x7f]+$"
# What a value failing each pattern is told, in place of the pattern itself.
PATTERN_MESSAGES = {
    NO_NUL: "must not contain a NUL character",
    IDENTIFIER: "must not contain control characters",
}

MAX_PROMPT = 2000

Prompt = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PROMPT, pattern=NO_NUL)
]
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=IDENTIFIER)
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)
]
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=NO_NUL)
]

# The pipelines a request may name; service.pipeline.definitions defines one for each.
PipelineName = Literal["veo", "lesson"]
DurationSeconds = Literal[4, 6, 8]
# The aspect ratios Veo renders.
AspectRatio = Literal["16:9", "9:16"]
Resolution = Literal["720p", "1080p"]

PIPELINE_NAMES: tuple[str, ...] = get_args(PipelineName)
DURATIONS: tuple[int, ...] = get_args(DurationSeconds)
ASPECT_RATIOS: tuple[str, ...] = get_args(AspectRatio)
RESOLUTIONS: tuple[str, ...] = get_args(Resolution)
DEFAULT_PIPELINE: PipelineName = "veo"

# The fields kept in their own columns of video_requests, in the order a differing
# field is named; `request_id` is the row's id, and every other field is kept in the
# `parameters` column.
COLUMNS = (
    "user_id",
    "guild_id",
    "channel_id",
    "pipeline",
    "prompt",
    "duration_seconds",
    "aspect_ratio",
    "resolution",
    "generate_audio",
)


class VideoRequest(BaseModel):
    """A video request. Unknown fields are refused, so a typo never passes silently."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "user_id": "123456789012345678",
                    "guild_id": "987654321098765432",
                    "channel_id": "112233445566778899",
                    "prompt": "A red fox running through fresh snow at dawn, cinematic",
                    "duration_seconds": 8,
                    "aspect_ratio": "16:9",
                    "resolution": "720p",
                    "generate_audio": True,
                }
            ]
        },
    )

    user_id: Identifier = Field(description="The submitting user (a Discord user ID, a learner ID, ...).")
    guild_id: Identifier | None = None
    channel_id: Identifier | None = None
    prompt: Prompt = Field(description="What to generate; 1 to 2000 characters after trimming.")
    duration_seconds: DurationSeconds = 8
    aspect_ratio: AspectRatio = "16:9"
    resolution: Resolution = "720p"
    generate_audio: bool = False
    pipeline: PipelineName = DEFAULT_PIPELINE
    callback_url: HttpUrl | None = Field(
        default=None, description="Called with the outcome when the request finishes."
    )
    request_id: uuid.UUID | None = Field(
        default=None,
        description="A UUID chosen by the client. Sending the same one again returns the existing request.",
    )
    topic: ShortText | None = Field(
        default=None, validate_default=True, description="Required for the `lesson` pipeline."
    )
    learning_objective: LongText | None = Field(default=None, description="For the `lesson` pipeline.")
    negative_prompt: LongText | None = Field(default=None, description="What the video should not show.")
    seed: int | None = Field(default=None, ge=0, le=4294967295)
    sample_count: int | None = Field(default=None, ge=1, le=4, description="Videos to generate (1-4).")

    @field_validator("topic")
    @classmethod
    def _topic_for_lessons(cls, value: str | None, info: ValidationInfo) -> str | None:
        pipeline = info.data.get("pipeline")
        if pipeline == "lesson" and value is None:
            raise ValueError(LESSON_NEEDS_TOPIC)
        if pipeline == "veo" and value is not None:
            raise ValueError("topic applies to the lesson pipeline only")
        return value

    @field_validator("learning_objective")
    @classmethod
    def _objective_for_lessons(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("pipeline") == "veo":
            raise ValueError("learning_objective applies to the lesson pipeline only")
        return value

    # --- the stored form ---------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        """The request as the create function takes it: its columns, and `parameters`."""
        # warnings=False: a value built unchecked (a test's, a replayed one) may hold a
        # value its type refuses; it is stored as it is, and the validation stage fails it.
        data = self.model_dump(mode="json", exclude={"request_id"}, warnings=False)
        record = {name: data.pop(name) for name in COLUMNS}
        record["parameters"] = {name: value for name, value in data.items() if value is not None}
        return record

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> VideoRequest:
        """The request back from its row (or a journaled create), as it was stored."""
        stored = row.get("parameters") or {}
        fields = {name: row[name] for name in COLUMNS if name in row}
        fields |= {name: value for name, value in stored.items() if name in cls.model_fields}
        rid = row.get("id")
        return cls.model_construct(request_id=rid if rid is None else uuid.UUID(str(rid)), **fields)

    def differing(self, row: Mapping[str, Any]) -> list[str]:
        """The fields whose values differ from a stored request's, columns first.

        An optional field absent on both sides is equal, one sent on one side only differs.
        """
        mine = self.to_record()
        stored: Mapping[str, Any] = row.get("parameters") or {}
        names = [name for name in COLUMNS if mine[name] != row[name]]
        optional = [name for name in type(self).model_fields if name not in COLUMNS and name != "request_id"]
        return names + [name for name in optional if mine["parameters"].get(name) != stored.get(name)]


LESSON_NEEDS_TOPIC = "the lesson pipeline needs a topic"


def problems(request: VideoRequest) -> list[str]:
    """What a stored request breaks of the rules above (a row that skipped the API's check)."""
    found = []
    if not request.prompt.strip():
        found.append("prompt is empty")
    if len(request.prompt) > MAX_PROMPT:
        found.append(f"prompt is longer than {MAX_PROMPT} characters")
    for name, allowed in (
        ("duration_seconds", DURATIONS),
        ("aspect_ratio", ASPECT_RATIOS),
        ("resolution", RESOLUTIONS),
    ):
        if getattr(request, name) not in allowed:
            found.append(f"{name} must be one of {sorted(allowed)}")
    if request.pipeline == "lesson" and not request.topic:
        found.append(LESSON_NEEDS_TOPIC)
    return found
