"""Stage tracking: a request's stage rows, their attempts, and `track_stage`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog

from service.request_states import Severity, StageStatus
from service.sanitize import sanitize_error
from service.tracking.fence import fence_of
from service.tracking.results import StageResult
from service.tracking.run_writes import RunWrites
from service.tracking.write_values import StageChange

log = structlog.get_logger("reeltrace.tracker")


@dataclass
class StageHandle:
    """What a tracked stage body hands back: its output, stored on the stage row."""

    output: dict[str, Any] | None = None


def error_details(exc: BaseException) -> dict[str, Any]:
    """Structured context of a failure, for `error_details` (no traceback: logs have it)."""
    details: dict[str, Any] = {"exception_type": type(exc).__name__}
    for attr in ("code", "retryable"):
        value = getattr(exc, attr, None)
        if value is not None:
            details[attr] = value
    return details


class StageTracking:
    """Stage rows: start, complete, fail, retry, skip, and the tracking context manager."""

    def __init__(self, runs: RunWrites) -> None:
        self.runs = runs
        self.writer = runs.writer

    async def _stage(
        self,
        request_id: uuid.UUID,
        stage: str,
        status: StageStatus,
        event_type: str,
        *,
        attempts: int | None = None,
        output: dict[str, Any] | None = None,
        error: str | None = None,
        error_details: dict[str, Any] | None = None,
        severity: Severity = Severity.INFO,
        message: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> StageResult | None:
        now = self.writer.clock()
        error = sanitize_error(error) if error is not None else None
        write = StageChange(
            request_id=request_id,
            stage_name=stage,
            status=status,
            at=now,
            attempts=attempts,
            output=output,
            error_message=error,
            error_details=error_details,
            fence=fence_of(request_id),
            event=self.writer.event(
                request_id,
                event_type,
                now,
                severity=severity,
                stage=stage,
                message=message or error,
                data={**({"attempt": attempts} if attempts is not None else {}), **(data or {})},
            ),
        )

        def applied(result: StageResult | None) -> None:
            log.info(
                event_type,
                request_id=str(request_id),
                stage=stage,
                # A completion does not name its attempt: the stage row knows it.
                attempt=result.attempts if result else attempts,
                status=status.value,
                # A start folded with its ending sees the ended row: its duration is the ending's.
                duration_ms=result.duration_ms if result and status != StageStatus.IN_PROGRESS else None,
                progress_percentage=result.progress_percentage if result else None,
                **({"error_message": error} if error else {}),
            )

        # A retry is sent at once: the run now waits out its backoff, and the retry
        # shows meanwhile. Other stage changes fold into the run's next write.
        result: StageResult | None = await self.runs.track(
            write,
            f"stage_{status.value}",
            applied,
            now=event_type == "retry",
            request_id=str(request_id),
            stage=stage,
        )
        return result

    async def start_stage(
        self, request_id: uuid.UUID, stage: str, attempt: int = 1, *, span_ids: dict[str, str] | None = None
    ) -> StageResult | None:
        """Start an attempt; `span_ids` (the attempt's span) lets a resumed attempt link to it.

        The event names the claim it was started under: an attempt a run left in
        progress starts again under the same number when another run takes it over.
        """
        fence = fence_of(request_id)
        return await self._stage(
            request_id,
            stage,
            StageStatus.IN_PROGRESS,
            "stage_started",
            attempts=attempt,
            message=f"{stage} started (attempt {attempt})",
            data={**(span_ids or {}), **({"claim_generation": fence} if fence is not None else {})},
        )

    async def complete_stage(
        self, request_id: uuid.UUID, stage: str, output: dict[str, Any] | None = None
    ) -> StageResult | None:
        return await self._stage(
            request_id,
            stage,
            StageStatus.COMPLETED,
            "stage_completed",
            output=output,
            message=f"{stage} completed",
        )

    async def fail_stage(
        self,
        request_id: uuid.UUID,
        stage: str,
        error: str,
        *,
        error_details: dict[str, Any] | None = None,
        attempt: int | None = None,
    ) -> StageResult | None:
        return await self._stage(
            request_id,
            stage,
            StageStatus.FAILED,
            "stage_failed",
            attempts=attempt,
            error=error,
            error_details=error_details,
            severity=Severity.ERROR,
        )

    async def retry_stage(
        self,
        request_id: uuid.UUID,
        stage: str,
        attempt: int,
        error: str,
        *,
        delay_seconds: float | None = None,
        error_details: dict[str, Any] | None = None,
    ) -> StageResult | None:
        """Record that `attempt` failed and another will follow after `delay_seconds`."""
        return await self._stage(
            request_id,
            stage,
            StageStatus.IN_PROGRESS,
            "retry",
            attempts=attempt,
            error=error,
            error_details=error_details,
            severity=Severity.WARNING,
            data={"next_delay_seconds": delay_seconds} if delay_seconds is not None else None,
        )

    async def skip_stage(self, request_id: uuid.UUID, stage: str, reason: str) -> StageResult | None:
        return await self._stage(
            request_id, stage, StageStatus.SKIPPED, "stage_skipped", message=reason, data={"reason": reason}
        )

    @asynccontextmanager
    async def track_stage(
        self,
        request_id: uuid.UUID,
        stage: str,
        *,
        attempt: int = 1,
        will_retry: Callable[[BaseException], bool] = lambda _: False,
        span_ids: dict[str, str] | None = None,
    ) -> AsyncIterator[StageHandle]:
        """Track one stage attempt: `async with tracker.track_stage(id, "rag_retrieval") as st:`.

        Starts the stage row on entry; on a normal exit completes it with `st.output`;
        on an exception fails it (unless `will_retry` says another attempt follows,
        which the caller records with `retry_stage`) and re-raises. Cancellation (a
        worker shutting down) records nothing: the stage resumes elsewhere.
        """
        handle = StageHandle()
        await self.start_stage(request_id, stage, attempt, span_ids=span_ids)
        try:
            yield handle
        except Exception as exc:
            if not will_retry(exc):
                await self.fail_stage(
                    request_id, stage, str(exc) or type(exc).__name__,
                    error_details=error_details(exc), attempt=attempt,
                )  # fmt: skip
            raise
        await self.complete_stage(request_id, stage, output=handle.output)
