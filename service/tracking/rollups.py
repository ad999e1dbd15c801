"""Rollups of finished requests: how a window is read from them, and rebuilt.

The rollups (migration 0008) are kept in step by a database trigger; this module
holds what the application does with them: splitting a window into the pieces the
readers sum (`Window`) and recomputing them from the rows (`rebuild`). Retention
prunes the minute-level ones when it deletes the rows beneath them
(`service.tracking.retention`).

Quantiles read from the sketch are within `RELATIVE_ERROR` of the exact value
(percentile_cont over the same rows); counts and sums are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from service.db.database import Database
from service.errors import ValidationFailed
from service.tracking import rollup_sql

log = structlog.get_logger("reeltrace.rollups")

# DDSketch's bound for buckets of ratio (1 + a) / (1 - a): every value is a of its bucket's.
RELATIVE_ERROR = 0.01
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
# The buckets' origin (migration 0008's date_bin origin): whole minutes and hours in UTC.
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
# An open end: rows created "in the future" by a writer whose clock runs ahead still count.
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
BEGINNING = datetime(1, 1, 1, tzinfo=UTC)


def floor_to(at: datetime, step: timedelta) -> datetime:
    return at - (at - ORIGIN) % step


def ceil_to(at: datetime, step: timedelta) -> datetime:
    floored = floor_to(at, step)
    return floored if floored == at else floored + step


@dataclass(frozen=True, slots=True)
class Window:
    """[since, until) as signed pieces, each read from the rollups or the rows.

    Hourly rollups in [h1, h2); at the start, minute rollups in [lead_m1, lead_m2) and
    rows in [lead_r1, lead_r2), added (`lead_sign` 1) or, when the start is early in its
    hour, taken away from that whole hour (-1), whichever reads fewer minutes; at the
    end, minute rollups in [h2, m2) and rows in [m2, until), added.
    """

    since: datetime
    until: datetime
    h1: datetime
    h2: datetime
    lead_m1: datetime
    lead_m2: datetime
    lead_r1: datetime
    lead_r2: datetime
    lead_sign: int
    m2: datetime

    @classmethod
    def of(cls, since: datetime, until: datetime) -> Window:
        # No bucket holds rows from after it ends, so an open end (FAR_FUTURE) reads the
        # current hour from its hourly bucket: only the window's start has edges to read.
        m1, m2 = ceil_to(since, MINUTE), floor_to(until, MINUTE)
        if m1 >= m2:  # under a minute's worth of whole minutes: the rows alone
            return cls(since, until, until, until, until, until, since, until, 1, until)
        h1, h2 = ceil_to(since, HOUR), floor_to(until, HOUR)
        if h1 >= h2:  # no whole hour: minutes and rows
            return cls(since, until, m2, m2, m1, m2, since, m1, 1, m2)
        start = floor_to(since, HOUR)
        if since - start < HOUR / 2 and start != since:
            # Early in its hour: the whole hour, less the minutes and rows before `since`.
            cut = floor_to(since, MINUTE)
            return cls(since, until, start, h2, start, cut, cut, since, -1, m2)
        return cls(since, until, h1, h2, m1, h1, since, m1, 1, m2)

    def params(self) -> dict[str, object]:
        return {
            "since": self.since,
            "until": self.until,
            "h1": self.h1,
            "h2": self.h2,
            "lead_m1": self.lead_m1,
            "lead_m2": self.lead_m2,
            "lead_r1": self.lead_r1,
            "lead_r2": self.lead_r2,
            "lead_sign": self.lead_sign,
            "m2": self.m2,
        }

    def pieces(self) -> list[tuple[str, datetime, datetime, int]]:
        """(source, start, end, sign) of each piece: what the SQL reads, for tests and docs."""
        return [
            ("hours", self.h1, self.h2, 1),
            ("minutes", self.lead_m1, self.lead_m2, self.lead_sign),
            ("rows", self.lead_r1, self.lead_r2, self.lead_sign),
            ("minutes", self.h2, self.m2, 1),
            ("rows", self.m2, self.until, 1),
        ]


def retention_horizon(retention_days: int | None, *, now: datetime | None = None) -> datetime | None:
    """The first whole hour whose rows retention has left intact (None: nothing is deleted)."""
    if retention_days is None:
        return None
    return ceil_to((now or datetime.now(UTC)) - timedelta(days=retention_days), HOUR)


@dataclass(frozen=True, slots=True)
class RebuildReport:
    since: datetime | None
    requests: int
    buckets: int


async def rebuild(
    database: Database, *, since: datetime | None = None, retention_days: int | None = None
) -> RebuildReport:
    """Recompute the rollups of requests created at or after `since` (its hour) from the rows.

    Without `since`, from the retention horizon (or everything when nothing is deleted).
    A `since` before the horizon is refused: the rows there are gone, and recomputing
    from what is left would erase the history the rollups keep.
    """
    horizon = retention_horizon(retention_days)
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        since = floor_to(since, HOUR)
        if horizon is not None and since < horizon:
            raise ValidationFailed(
                f"since {since.isoformat()} is before the retention horizon {horizon.isoformat()}: "
                "the rows before it were deleted and the rollups keep their history",
                field="since",
            )
    else:
        since = horizon
    async with database.transaction() as tx:
        await tx.execute(rollup_sql.REBUILD_LOCK)
        # Without a horizon everything is recomputed, buckets of rows deleted by hand included.
        params = {"since": since or BEGINNING}
        for statement in rollup_sql.REBUILD_DELETE:
            await tx.execute(statement, params)
        inserted = [max(await tx.execute(s, params), 0) for s in rollup_sql.REBUILD_INSERT]
        counted = await tx.fetch(rollup_sql.REBUILT_REQUESTS, params)
        requests = next(iter(counted[0].values())) or 0
    log.info(
        "rollups_rebuilt",
        since=since.isoformat() if since else None,
        requests=int(requests),
        buckets=inserted[0],
    )
    return RebuildReport(since=since, requests=int(requests), buckets=inserted[0])
