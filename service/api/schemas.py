"""Request and response bodies of the HTTP API (read models live in tracking.schemas)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints, ValidationInfo, field_validator

from service.tracking.schemas import RequestRead
from service.tracking.states import RequestStatus
from service.webhooks.schemas import DeliveryRead

# PostgreSQL text cannot hold NUL; identifiers hold no control characters at all.
NO_NUL = r"^[^\x00]*$"
IDENTIFIER = r"^[^\x00-\x1f\x7f]+$"
# A request UUID or correlation ID (anything else cannot name a request).
REQUEST_KEY = r"^[A-Za-z0-9_-]+$"
# What a value failing each pattern is told, in place of the pattern itself.
PATTERN_MESSAGES = {
    NO_NUL: "must not contain a NUL character",
    IDENTIFIER: "must not contain control characters",
    REQUEST_KEY: "must be a request UUID or correlation ID (letters, digits, '-' and '_')",
}

Prompt = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=NO_NUL)
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

# Fields that travel in `parameters` to the pipeline rather than in their own columns.
EXTRA_PARAMETERS = ("callback_url", "topic", "learning_objective", "negative_prompt", "seed", "sample_count")


class RequestCreate(BaseModel):
    """A video request. Unknown fields are refused, so a typo never passes silently."""

    model_config = ConfigDict(
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
    duration_seconds: Literal[4, 6, 8] = 8
    aspect_ratio: Literal["16:9", "9:16"] = "16:9"
    resolution: Literal["720p", "1080p"] = "720p"
    generate_audio: bool = False
    pipeline: Literal["veo", "lesson"] = "veo"
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
            raise ValueError("the lesson pipeline needs a topic")
        if pipeline == "veo" and value is not None:
            raise ValueError("topic applies to the lesson pipeline only")
        return value

    @field_validator("learning_objective")
    @classmethod
    def _objective_for_lessons(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("pipeline") == "veo":
            raise ValueError("learning_objective applies to the lesson pipeline only")
        return value

    def parameters(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in EXTRA_PARAMETERS}
        return {k: (str(v) if isinstance(v, HttpUrl) else v) for k, v in values.items() if v is not None}


class Links(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self", description="This request's detail.")
    events: str
    stream: str = Field(description="Server-Sent Events of this request's changes.")
    trace: str | None = Field(default=None, description="The request's trace in Jaeger, when configured.")


class RequestAccepted(BaseModel):
    id: uuid.UUID
    correlation_id: str
    status: RequestStatus
    trace_id: str | None
    created: bool = Field(description="False when `request_id` named an existing request.")
    degraded: bool = Field(
        default=False,
        description="True when PostgreSQL was unreachable: the request runs and is recorded later.",
    )
    links: Links


class RequestDetail(RequestRead):
    topic: str | None = None
    learning_objective: str | None = None
    links: Links
    deliveries: list[DeliveryRead] = Field(
        default_factory=list, description="Its callback deliveries, each with its attempts."
    )


class BreakerRead(BaseModel):
    dependency: str
    state: Literal["closed", "open", "half_open"]
    failure_count: int
    success_count: int
    call_count: int
    rejected_count: int
    last_failure_at: datetime | None
    opened_at: datetime | None
    consecutive_failures: int | None = None
    failure_threshold: int | None = Field(default=None, description="Consecutive failures that open it.")
    reset_seconds: float | None = Field(default=None, description="How long it stays open before a trial.")
    processes: int = Field(
        default=1, description="Worker processes whose breakers are folded into this entry."
    )


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. `body.prompt` or `query.limit`.")
    message: str
    type: str | None = None


class BudgetRefusal(BaseModel):
    """Which budget a refused submission would have gone over."""

    scope: str = Field(description="user_daily, user_monthly, guild_daily or guild_monthly")
    spent_usd: float = Field(description="Spent plus reserved by unfinished requests, this period.")
    limit_usd: float
    resets_at: str = Field(description="When the period ends (UTC, ISO 8601).")


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer has this shape."""

    error: str = Field(description="A stable, machine-readable code such as `rate_limited`.")
    detail: str | list[FieldError]
    budget: BudgetRefusal | None = Field(default=None, description="With 402 only.")
