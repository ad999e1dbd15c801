"""Retention: deleting terminal requests older than REQUEST_RETENTION_DAYS.

Stages and events go with their request (ON DELETE CASCADE). A request that is still
pending or generating is never deleted, however old. Deletions leave tombstones
marked `retention`, so exported snapshots keep those rows as history.

The rollups outlive the rows: the hourly ones are kept, so the dashboards and the
hourly metrics still show the past; the minute-level ones before the cutoff, which
only serve the edges of windows over rows that exist, are pruned with them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import text

from service.db.database import Database
from service.tracking.rollups import MINUTE, floor_to, prune_minutes

log = structlog.get_logger("reeltrace.retention")

# Batches keep each transaction (and its locks) short on a large table.
BATCH_SIZE = 5000

_DELETE_BATCH = text(
    """
DELETE FROM video_requests
WHERE id IN (
    SELECT id FROM video_requests
    WHERE created_at < :cutoff AND status IN ('completed', 'failed', 'timeout')
    LIMIT :batch
)
"""
)
# Only one replica runs the job at a time; the others skip this round.
_LOCK_KEY = 0x7265656C  # "reel"


async def delete_expired(
    database: Database, retention_days: int, *, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> int:
    """Delete terminal requests created more than `retention_days` ago; returns the count."""
    # On a minute boundary: a minute's rows go whole or stay whole, so the rollups can
    # still take a window's edge minute from the rows (a row kept up to 59 s longer).
    cutoff = floor_to((now or datetime.now(UTC)) - timedelta(days=retention_days), MINUTE)
    deleted = 0
    async with database.connection() as lock_conn:
        got = await lock_conn.fetch_one(text("SELECT pg_try_advisory_lock(:k) AS got"), {"k": _LOCK_KEY})
        if got is None or not got["got"]:
            log.info("retention_cleanup_skipped", reason="another process holds the retention lock")
            return 0
        try:
            while True:
                async with database.transaction() as tx:
                    await tx.execute(text("SET LOCAL reeltrace.delete_reason = 'retention'"))
                    count = max(await tx.execute(_DELETE_BATCH, {"cutoff": cutoff, "batch": batch_size}), 0)
                deleted += count
                if count < batch_size:
                    break
            async with database.transaction() as tx:
                await prune_minutes(tx, cutoff)
        finally:
            await lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
    log.info(
        "retention_cleanup", deleted_count=deleted, retention_days=retention_days, cutoff=cutoff.isoformat()
    )
    return deleted
