"""Periodic jobs every reeltrace process runs beside its main work.

- the journal replayer: applies tracking writes journaled while PostgreSQL was down;
- retention, daily, when REQUEST_RETENTION_DAYS is set (one process at a time);
- the snapshot export, when REELTRACE_EXPORT_INTERVAL is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from service.errors import DatabaseUnavailable
from service.runtime import Runtime
from service.tracking.retention import delete_expired

log = structlog.get_logger("reeltrace.background")

REPLAY_INTERVAL_SECONDS = 5.0


async def every(seconds: float, fn: Callable[[], Awaitable[object]], stop: asyncio.Event) -> None:
    """Run `fn` every `seconds` until `stop`; a failure is logged, never fatal."""
    name = getattr(fn, "__name__", "job")
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        if stop.is_set():
            return
        try:
            await fn()
        except DatabaseUnavailable:
            log.warning("background_job_skipped", job=name, reason="PostgreSQL unreachable")
        except Exception:
            log.exception("background_job_failed", job=name)


async def replay_journal_once(runtime: Runtime) -> None:
    """The replayer's tick: apply the journal if it holds writes."""
    if runtime.journal.refresh():  # the files: another process's writes count too
        await runtime.tracker.backfill()
    else:
        # The processes of a data dir share one journal, and whichever replays it also
        # drains the writes the others journaled: their gauge must follow, or it shows
        # writes pending forever (and the journal-not-draining alert fires).
        runtime.tracker.metrics.tracking_journal_pending.set(0)


def background_jobs(runtime: Runtime, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
    settings = runtime.settings

    async def replay_journal() -> None:
        await replay_journal_once(runtime)

    jobs: list[Coroutine[Any, Any, None]] = [every(REPLAY_INTERVAL_SECONDS, replay_journal, stop)]
    days = settings.request_retention_days
    if days is not None:

        async def retention() -> None:
            await delete_expired(runtime.database, days)

        jobs.append(every(settings.cleanup_interval_seconds, retention, stop))
        log.info(
            "retention_scheduled", retention_days=days, interval_seconds=settings.cleanup_interval_seconds
        )
    if settings.export_interval is not None:
        from service.snapshot_export import run_periodic_export  # pyarrow loads only when exports run

        jobs.append(run_periodic_export(settings, runtime.database_url, stop))
    return jobs
