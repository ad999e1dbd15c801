"""The periodic snapshot export the service runs every REELTRACE_EXPORT_INTERVAL seconds."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

import structlog

from analytics.errors import AnalyticsError, ExportCancelled, ExportInProgress
from analytics.export import ExportResult, export_snapshot
from service.db.urls import libpq_dsn
from service.settings import Settings

log = structlog.get_logger("reeltrace.exporter")


async def export_once(dsn: str, root: Path, cancel: threading.Event | None = None) -> ExportResult | None:
    """One export in a worker thread; a failure is logged, never raised (the next run retries).

    Setting `cancel` ends a running export early (a thread cannot be interrupted, and
    a first export of a large database takes minutes that a shutdown should not wait).
    """
    try:
        result = await asyncio.to_thread(export_snapshot, dsn, root, cancel=cancel)
    except ExportCancelled:
        log.info("export_cancelled", reason="the service is stopping", snapshot_dir=str(root))
        return None
    except ExportInProgress:
        log.info("export_skipped", reason="another export is writing the snapshot", snapshot_dir=str(root))
        return None
    except (AnalyticsError, OSError) as exc:
        log.warning("export_failed", error=str(exc), error_type=type(exc).__name__, snapshot_dir=str(root))
        return None
    except Exception as exc:
        # Anything else (a damaged data file pyarrow cannot read, a refused query) must
        # not end the periodic task: it would stop exporting for the life of the
        # process, and silently, as nothing awaits the task until shutdown.
        log.exception("export_failed", error=str(exc), error_type=type(exc).__name__, snapshot_dir=str(root))
        return None
    manifest = result.manifest
    log.info(
        "export_done",
        version=manifest.version,
        watermark=manifest.watermark.isoformat(),
        rows=result.rows_read,
        delta_rows=result.delta_rows,
        purged_requests=result.purged_requests,
        snapshot_rows={name: t.rows for name, t in manifest.tables.items()},
        seconds=round(result.total_seconds, 3),
    )
    return result


async def run_periodic_export(settings: Settings, database_url: str, stop: asyncio.Event) -> None:
    """Export at once, then every `settings.export_interval` seconds, until `stop` is set."""
    interval = settings.export_interval
    if interval is None:
        log.info("export_disabled", reason="REELTRACE_EXPORT_INTERVAL is not set")
        return
    dsn = libpq_dsn(database_url)
    root = settings.snapshot_dir
    log.info("export_scheduled", interval_seconds=interval, snapshot_dir=str(root))
    cancel = threading.Event()

    async def cancel_on_stop() -> None:
        await stop.wait()
        cancel.set()

    watcher = asyncio.create_task(cancel_on_stop())
    try:
        while not stop.is_set():
            await export_once(dsn, root, cancel)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
    finally:
        watcher.cancel()
