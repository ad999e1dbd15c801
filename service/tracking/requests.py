"""What the tracker takes and gives for a request, and the spec's timeout message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.pipeline.definitions import DEFAULT_PIPELINE
from service.tracking.states import RequestStatus


def timeout_message(timeout_seconds: float) -> str:
    """The spec's "Generation timed out after 5 minutes"; the figure follows the setting."""
    if timeout_seconds >= 60 and timeout_seconds % 60 == 0:
        amount, unit = int(timeout_seconds // 60), "minute"
    else:
        amount, unit = timeout_seconds, "second"  # type: ignore[assignment]
    plural = "" if amount == 1 else "s"
    return f"Generation timed out after {amount:g} {unit}{plural}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class NewRequest(BaseModel):
    """What a client asks for; the tracker adds identity, timing and stages."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID | None = None
    user_id: str
    guild_id: str | None = None
    channel_id: str | None = None
    prompt: str
    duration_seconds: int = 8
    aspect_ratio: str = "16:9"
    resolution: str = "720p"
    generate_audio: bool = False
    pipeline: str = DEFAULT_PIPELINE
    parameters: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CreatedRequest:
    id: uuid.UUID
    correlation_id: str
    status: RequestStatus
    created_at: datetime
    created: bool
    """False when the UUID already existed and the existing request was returned."""
    journaled: bool = False
    """True when PostgreSQL was unreachable: the ID is synthetic until backfilled."""
