"""Folding a run's consecutive writes into one statement.

A run writes in bursts: a stage completes and the next one starts, the last stage
ends with the request and its skipped notification, a log event precedes a call.
Inside `RunWrites.folding` (`service.tracking.run_writes`; the tracker's `folding`)
those writes wait in a `Fold` and are sent together (`service.tracking.write_values.Step`)
when they must be durable: before the run calls out (`hold_claim`), when a retry is
recorded, and when the run ends. Nothing the run does outside this process happens
between a write and the statement that carries it, so a run that dies loses nothing a
resumed run would need: its last durable point is the same as before, only fewer
round trips led to it.

The fold belongs to the run's task (a context variable), so another task writing for
the same request (the watchdog ending it) never joins it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from service.request_states import StageStatus
from service.tracking.write_values import (
    LogEvent,
    RecordCost,
    RecordOperation,
    StageChange,
    StepPart,
    Transition,
)

# Called with what the write changed (a TransitionResult, a StageResult, or None when
# journaled or when the part has no result), once the write has been applied.
Applied = Callable[[Any], None]

_FINISHING = (StageStatus.COMPLETED, StageStatus.FAILED, StageStatus.SKIPPED)


def part_request_id(part: StepPart) -> uuid.UUID:
    return part.event.request_id if isinstance(part, LogEvent) else part.request_id


@dataclass
class Fold:
    """The writes of one run waiting to be sent together."""

    request_id: uuid.UUID
    parts: list[StepPart] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)
    # Clear the run's lease with the last statement (the run is over).
    release_lease: bool = False

    def accepts(self, part: StepPart) -> bool:
        """True if `part` can go in the same statement as the parts waiting.

        A statement changes each row once: one status change, one cost, one operation,
        and per stage either one change or a start followed by its ending.
        """
        for waiting in self.parts:
            if type(waiting) is type(part) and isinstance(part, Transition | RecordCost | RecordOperation):
                return False
            if isinstance(part, StageChange) and isinstance(waiting, StageChange):
                if waiting.stage_name != part.stage_name:
                    continue
                if not (waiting.status == StageStatus.IN_PROGRESS and part.status in _FINISHING):
                    return False
                if any(
                    isinstance(p, StageChange) and p.stage_name == part.stage_name and p.status in _FINISHING
                    for p in self.parts
                ):
                    return False
        return True

    def add(self, part: StepPart, applied: Applied, operation: str) -> None:
        self.parts.append(part)
        self.applied.append(applied)
        self.operations.append(operation)

    def take(self) -> tuple[list[StepPart], list[Applied], list[str], bool]:
        """Everything waiting, leaving the fold empty."""
        taken = (self.parts, self.applied, self.operations, self.release_lease)
        self.parts, self.applied, self.operations, self.release_lease = [], [], [], False
        return taken


current_fold: ContextVar[Fold | None] = ContextVar("reeltrace_fold", default=None)


def fold_for(request_id: uuid.UUID) -> Fold | None:
    """The calling run's fold for `request_id`, if it is folding its writes."""
    fold = current_fold.get()
    return fold if fold is not None and fold.request_id == request_id else None
