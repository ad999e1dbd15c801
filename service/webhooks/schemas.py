"""How a webhook delivery and its attempts read in the API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from service.webhooks.repository import Delivery


class DeliveryAttemptRead(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None = Field(description="The receiver's answer; null when none came.")
    latency_ms: float | None
    outcome: Literal["delivered", "pending", "failed"] = Field(
        description="What the delivery became after this attempt."
    )
    error: str | None = None
    next_attempt_at: datetime | None = None


class DeliveryRead(BaseModel):
    id: uuid.UUID = Field(description="Sent as `X-Reeltrace-Delivery`, the same on every attempt.")
    request_id: uuid.UUID
    event: str
    url: str
    outcome: Literal["delivered", "pending", "failed"]
    attempts: int
    last_status_code: int | None
    last_latency_ms: float | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    deliver_until: datetime = Field(description="End of the retry window: no attempt is made after it.")
    delivered_at: datetime | None
    created_at: datetime
    history: list[DeliveryAttemptRead] = Field(
        default_factory=list, description="Each attempt, oldest first."
    )

    @classmethod
    def of(cls, delivery: Delivery, attempts: list[dict[str, Any]] | None = None) -> DeliveryRead:
        mine = [a for a in attempts or [] if a.get("delivery_id") == str(delivery.id)]
        return cls(
            id=delivery.id,
            request_id=delivery.request_id,
            event=delivery.event,
            url=delivery.url,
            outcome=delivery.outcome,
            attempts=delivery.attempts,
            last_status_code=delivery.last_status_code,
            last_latency_ms=delivery.last_latency_ms,
            last_error=delivery.last_error,
            last_attempt_at=delivery.last_attempt_at,
            next_attempt_at=delivery.next_attempt_at,
            deliver_until=delivery.deliver_until,
            delivered_at=delivery.delivered_at,
            created_at=delivery.created_at,
            history=[DeliveryAttemptRead.model_validate(a) for a in mine],
        )
