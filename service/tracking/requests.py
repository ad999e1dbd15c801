"""What the tracker gives back for a created request, and the spec's timeout message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from service.request_states import RequestStatus


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
