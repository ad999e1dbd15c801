"""The statements of retention: its lock, its batched deletions, the rollups it prunes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from service.db.database import Database
from service.db.namedsql import NamedSql

RETENTION = NamedSql("service.tracking", "sql/retention.sql")

# The session-level advisory lock only one replica holds at a time.
LOCK_KEY = 0x7265656C  # "reel"
_PRUNED = (
    "prune_minute_request_rollups",
    "prune_minute_request_rollup_sketches",
    "prune_minute_stage_rollups",
)


class RetentionRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[bool]:
        """Hold the retention lock for the block; yields False (holding nothing) if another has it."""
        async with self.database.connection() as session:
            row = await session.fetch_one(RETENTION["try_lock"], {"key": LOCK_KEY})
            got = bool(row and row["got"])
            try:
                yield got
            finally:
                if got:
                    await session.execute(RETENTION["unlock"], {"key": LOCK_KEY})

    async def delete_batch(self, cutoff: datetime, batch_size: int) -> int:
        """Delete up to `batch_size` terminal requests created before `cutoff`, in one transaction; the count."""
        async with self.database.transaction() as tx:
            await tx.execute(RETENTION["mark_retention"])
            return max(
                await tx.execute(RETENTION["delete_batch"], {"cutoff": cutoff, "batch": batch_size}), 0
            )

    async def prune_minute_rollups(self, before: datetime) -> None:
        """Drop the minute-level rollups of buckets starting before `before`."""
        async with self.database.transaction() as tx:
            for name in _PRUNED:
                await tx.execute(RETENTION[name], {"cutoff": before})
