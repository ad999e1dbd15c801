"""The claim a run holds on its request, as the fence of every write it makes.

A worker's claim returns the request's new `claim_generation`; the run keeps it in a
`Claim` made current for its task (a context variable, so every write the tracker
builds inside the run carries it without being passed through each layer). A write
refused for a stale generation marks the claim lost and cancels the run's task; the
external-call path checks the claim before calling out, so a run that lost its claim
makes no further call.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import structlog

from service.errors import ClaimLost

log = structlog.get_logger("reeltrace.fence")


@dataclass(eq=False, slots=True)
class Claim:
    """One run's hold on one request: the generation its claim returned."""

    request_id: uuid.UUID
    generation: int
    task: asyncio.Task[Any] | None = field(default=None)
    lost: bool = False
    # When a write, a renewal or the claim itself last found the claim held
    # (time.monotonic() when it was sent; never, by default).
    confirmed_at: float = float("-inf")
    # The run's last write cleared the lease: nothing is left for the worker to release.
    released: bool = False

    def lose(self, reason: str) -> ClaimLost:
        """Mark the claim lost and cancel its run; returns the error for the caller to raise.

        The run's task is cancelled even when the run itself found out: whatever part
        of the run catches the ClaimLost, its next await ends it.
        """
        if not self.lost:
            self.lost = True
            log.warning(
                "claim_lost", request_id=str(self.request_id), claim_generation=self.generation, reason=reason
            )
        task = self.task
        if task is not None and not task.done():
            task.cancel()
        return ClaimLost(
            f"request {self.request_id} was claimed by another run",
            request_id=str(self.request_id),
            claim_generation=self.generation,
        )


_current: ContextVar[Claim | None] = ContextVar("reeltrace_claim", default=None)


def current_claim(request_id: uuid.UUID) -> Claim | None:
    """The claim this task holds on `request_id`, if any (writes of others are unfenced)."""
    claim = _current.get()
    return claim if claim is not None and claim.request_id == request_id else None


def fence_of(request_id: uuid.UUID) -> int | None:
    """The generation a write for `request_id` must find, or None for an unfenced write."""
    claim = current_claim(request_id)
    return claim.generation if claim is not None else None


@contextmanager
def holding(claim: Claim) -> Iterator[Claim]:
    """Make `claim` current for the block (the run of its request)."""
    if claim.task is None:
        claim.task = asyncio.current_task()
    token = _current.set(claim)
    try:
        yield claim
    finally:
        _current.reset(token)
