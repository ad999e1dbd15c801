"""Request and response bodies of the HTTP API (read models live in tracking.schemas)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.request_states import RequestStatus
from service.tracking.schemas import RequestRead
from service.video_request import PATTERN_MESSAGES as REQUEST_PATTERN_MESSAGES
from service.video_request import VideoRequest
from service.webhooks.schemas import DeliveryRead

# A request UUID or correlation ID (anything else cannot name a request).
REQUEST_KEY = r"^[A-Za-z0-9_-]+$"
# What a value failing each pattern is told, in place of the pattern itself.
PATTERN_MESSAGES = {
    **REQUEST_PATTERN_MESSAGES,
    REQUEST_KEY: "must be a request UUID or correlation ID (letters, digits, '-' and '_')",
}


class RequestCreate(VideoRequest):
    """A video request. Unknown fields are refused, so a typo never passes silently."""


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
