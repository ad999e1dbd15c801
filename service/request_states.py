"""The request and stage state machines, and the message a timed-out request carries.

    pending -> generating -> completed | failed | timeout

The database enforces the same request transitions with a trigger (see the initial
migration), so that no writer, a psql session included, can break them.
"""

from __future__ import annotations

from enum import StrEnum


class RequestStatus(StrEnum):
    PENDING = "pending"
    GENERATING = "generating"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


class StageStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


TERMINAL = frozenset({RequestStatus.COMPLETED, RequestStatus.FAILED, RequestStatus.TIMEOUT})

TRANSITIONS: frozenset[tuple[RequestStatus, RequestStatus]] = frozenset(
    {
        (RequestStatus.PENDING, RequestStatus.GENERATING),
        (RequestStatus.GENERATING, RequestStatus.COMPLETED),
        (RequestStatus.GENERATING, RequestStatus.FAILED),
        (RequestStatus.GENERATING, RequestStatus.TIMEOUT),
    }
)


def is_valid_transition(old: RequestStatus, new: RequestStatus) -> bool:
    """True for a state-machine edge or for setting the same status again (a no-op)."""
    return old == new or (old, new) in TRANSITIONS


def allowed_sources(new: RequestStatus) -> list[RequestStatus]:
    """The statuses a request may be in for a change to `new` to be accepted."""
    return [old for old in RequestStatus if is_valid_transition(old, new)]


def timeout_message(timeout_seconds: float) -> str:
    """The spec's "Generation timed out after 5 minutes"; the figure follows the setting."""
    if timeout_seconds >= 60 and timeout_seconds % 60 == 0:
        amount, unit = int(timeout_seconds // 60), "minute"
    else:
        amount, unit = timeout_seconds, "second"  # type: ignore[assignment]
    plural = "" if amount == 1 else "s"
    return f"Generation timed out after {amount:g} {unit}{plural}"
