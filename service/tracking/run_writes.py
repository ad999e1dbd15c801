"""A run's writes: folded into steps, sent before each call out, fenced by its claim.

Every tracker (statuses, stages, costs, events) hands its writes to `RunWrites.track`.
Outside a run's fold a write goes straight to the writer; inside one it waits and
goes with the run's next step (`service.tracking.folding` says when one is sent).
Before a run calls out it confirms its claim here (`hold_claim`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog

from service.errors import ClaimLost, DatabaseUnavailable
from service.tracking.fence import current_claim
from service.tracking.folding import Applied, Fold, current_fold, fold_for, part_request_id
from service.tracking.write_values import StageChange, Step, StepPart
from service.tracking.writer import TABLES, TrackingWriter
from telemetry.database import record_write

log = structlog.get_logger("reeltrace.tracker")

# A run whose claim a write or a renewal confirmed this recently calls out without
# confirming it again: no other worker can claim a request whose lease has not
# expired, and the watchdog's ending of a run this young is no likelier than one
# landing during the call itself (which the claim check never covered).
CLAIM_FRESH_SECONDS = 1.0


def _part_result(result: Any, part: StepPart) -> Any:
    """A part's own result within a step's (None when journaled)."""
    if result is None:
        return None
    if isinstance(part, StageChange):
        return result.stages.get(part.stage_name)
    return result.transition if part.op == "transition" else None


class RunWrites:
    """Sends each tracker's writes, folding a run's into steps."""

    def __init__(self, writer: TrackingWriter, *, lease_seconds: float = 30.0) -> None:
        self.writer = writer
        self.lease_seconds = lease_seconds

    async def track(
        self, part: StepPart, operation: str, applied: Applied, *, now: bool = False, **context: Any
    ) -> Any:
        """Write `part`, or fold it into the run's next write (`now`: send it at once).

        `applied` gets the part's result once it is written (None when journaled). The
        result is returned when the part was sent now, else None.
        """
        request_id = part_request_id(part)
        fold = fold_for(request_id)
        if fold is None:
            repository = self.writer.repository
            result = await self.writer.write(part, lambda: repository.apply(part), operation, **context)
            applied(result)
            return result
        if not fold.accepts(part):
            await self._flush(fold)
        fold.add(part, applied, operation)
        record_write(f"tracking.{part.event.event_type}", TABLES[part.op], time.time_ns(), folded=True)
        return await self._flush(fold, last=part) if now else None

    async def _flush(self, fold: Fold, last: StepPart | None = None) -> Any:
        """Send the fold's parts as one write; returns the result of `last`, if given."""
        parts, applied, operations, release = fold.take()
        if not parts:
            return None
        # Always a step, even of one change: its changes are already in the trace.
        write = Step(request_id=fold.request_id, fence=parts[0].fence, parts=parts, release_lease=release)
        repository = self.writer.repository
        result = await self.writer.write(
            write, lambda: repository.apply(write), "+".join(operations), request_id=str(fold.request_id)
        )
        found: Any = None
        for part, done in zip(parts, applied, strict=True):
            part_result = _part_result(result, part)
            done(part_result)
            if part is last:
                found = part_result
        return found

    @asynccontextmanager
    async def folding(self, request_id: uuid.UUID) -> AsyncIterator[None]:
        """Fold the calling run's writes for `request_id` (see `service.tracking.folding`).

        Leaving the block sends what waits, however the run ended (a run that stopped
        part-way still records what it did), except after a lost claim, whose writes
        would be refused.
        """
        if fold_for(request_id) is not None:
            yield
            return
        fold = Fold(request_id)
        token = current_fold.set(fold)
        try:
            try:
                yield
            except ClaimLost:
                fold.take()
                raise
            except BaseException:
                if fold.parts:
                    try:
                        await asyncio.shield(self._flush(fold))
                    except Exception as exc:  # the run's own error is the one to raise
                        log.warning("tracking_flush_failed", request_id=str(request_id), error=str(exc))
                raise
            if fold.parts:
                await self._flush(fold)
        finally:
            current_fold.reset(token)

    async def flush(self, request_id: uuid.UUID) -> None:
        """Send what the calling run has folded for `request_id` (before reading it back)."""
        fold = fold_for(request_id)
        if fold is not None and fold.parts:
            await self._flush(fold)

    def release_with_last_write(self, request_id: uuid.UUID) -> None:
        """The run is over: its last folded write also clears its lease."""
        fold = fold_for(request_id)
        if fold is not None and fold.parts and current_claim(request_id) is not None:
            fold.release_lease = True

    async def hold_claim(self, request_id: uuid.UUID) -> None:
        """Before a run calls out: confirm its claim (lengthening its lease) under its fence.

        Raises ClaimLost, after stopping the run, if another run has taken the request
        over. A write from outside any run, and a run whose request is not in PostgreSQL
        yet (its create journaled), pass. While PostgreSQL is unreachable the run goes on
        (degraded mode): no other worker can claim the request through a database this
        process cannot reach either, and the first renewal once it answers settles it.
        """
        await self.flush(request_id)  # what the run did so far lands before it calls out
        claim = current_claim(request_id)
        if claim is None:
            return
        if claim.lost:
            raise claim.lose("claim already lost")
        sent = time.monotonic()
        if sent - claim.confirmed_at < CLAIM_FRESH_SECONDS:
            return
        try:
            held = await self.writer.repository.renew_claim(request_id, claim.generation, self.lease_seconds)
        except DatabaseUnavailable:
            return
        if held is False:
            raise claim.lose("lease renewal refused")
        if held:
            claim.confirmed_at = sent
