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

from service.db.database import Database
from service.tracking.retention_repository import RetentionRepository
from service.tracking.rollups import HOUR, MINUTE, floor_to

log = structlog.get_logger("reeltrace.retention")

# Batches keep each transaction (and its locks) short on a large table.
BATCH_SIZE = 5000


async def delete_expired(
    database: Database, retention_days: int, *, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> int:
    """Delete terminal requests created more than `retention_days` ago; returns the count."""
    # On a minute boundary: a minute's rows go whole or stay whole, so the rollups can
    # still take a window's edge minute from the rows (a row kept up to 59 s longer).
    cutoff = floor_to((now or datetime.now(UTC)) - timedelta(days=retention_days), MINUTE)
    deleted = 0
    repository = RetentionRepository(database)
    async with repository.exclusive() as got:
        if not got:
            log.info("retention_cleanup_skipped", reason="another process holds the retention lock")
            return 0
        while True:
            count = await repository.delete_batch(cutoff, batch_size)
            deleted += count
            if count < batch_size:
                break
        # The minutes of the cutoff's own hour stay: a window starting after the cutoff in
        # that hour reads the hour whole and takes away the minutes before its start,
        # among them the minutes whose rows were just deleted.
        await repository.prune_minute_rollups(floor_to(cutoff, HOUR))
    log.info(
        "retention_cleanup", deleted_count=deleted, retention_days=retention_days, cutoff=cutoff.isoformat()
    )
    return deleted
