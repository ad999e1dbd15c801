"""The analytics, as functions over an open snapshot; the SQL is in `sql/analytics.sql`.

The CLI, the API and the notebooks call these and nothing else, so a number means
the same thing wherever it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from analytics import namedsql
from analytics.defaults import STATUSES, TOP_PROMPTS
from analytics.errors import SnapshotCorrupt
from analytics.reader import UNREADABLE, Snapshot, SnapshotInfo

SQL_FILE = "analytics.sql"
Bucket = Literal["day", "week", "month"]
BUCKETS: tuple[str, ...] = get_args(Bucket)
CostBy = Literal["guild", "user", "model", "day"]
COST_BY: tuple[str, ...] = get_args(CostBy)


@dataclass(frozen=True)
class Rows:
    """A query result: column names and rows, for tables, plots and JSON alike."""

    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


def run(snap: Snapshot, name: str, **params: Any) -> Rows:
    """Run the named query with its parameters; unreadable data files are SnapshotCorrupt."""
    try:
        cursor = snap.execute(namedsql.query(SQL_FILE, name), params)
    except UNREADABLE as exc:
        raise SnapshotCorrupt(f"snapshot {snap.info.version} cannot be read: {exc}") from exc
    columns = tuple(d[0] for d in cursor.description or ())
    return Rows(name, columns, [tuple(r) for r in cursor.fetchall()])


@dataclass(frozen=True)
class PromptCount:
    prompt: str
    requests: int


@dataclass(frozen=True)
class GuildBucket:
    bucket_start: date
    total: int
    by_status: dict[str, int]
    avg_completed_duration_ms: float | None
    cost_usd: Decimal
    top_prompts: list[PromptCount]


@dataclass(frozen=True)
class GuildStats:
    guild_id: str
    bucket: Bucket
    snapshot: SnapshotInfo
    buckets: list[GuildBucket]


def check_bucket(bucket: str) -> Bucket:
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    return bucket  # type: ignore[return-value]


def guild_stats(snap: Snapshot, guild_id: str, bucket: str = "day", top: int = TOP_PROMPTS) -> GuildStats:
    """Per time bucket: counts by status, average completed duration, the top prompts."""
    checked = check_bucket(bucket)
    result = run(snap, "guild_stats", guild_id=guild_id, bucket=checked, top=top)
    buckets = [
        GuildBucket(
            bucket_start=row["bucket_start"],
            total=int(row["total"]),
            by_status={s: int(row[s]) for s in STATUSES},
            avg_completed_duration_ms=row["avg_completed_duration_ms"],
            cost_usd=Decimal(row["cost_usd"]),
            top_prompts=[PromptCount(p["prompt"], int(p["requests"])) for p in row["top_prompts"]],
        )
        for row in result.dicts()
    ]
    return GuildStats(guild_id, checked, snap.info, buckets)


def global_latency(snap: Snapshot, since: datetime | None = None) -> Rows:
    """Exact P50/P95/P99 of completed durations and the failure rate: overall, per pipeline, per aspect ratio."""
    return run(snap, "global_latency", since=since)


def stage_stats(snap: Snapshot) -> Rows:
    """Per pipeline stage: runs, durations, failure rate and share of the pipeline's failures."""
    return run(snap, "stage_stats")


@dataclass(frozen=True)
class RetryEconomics:
    attempts: Rows  # per stage: attempts, retries, successes, attempts per success
    wasted: Rows  # per pipeline and status: time spent on failed and timed-out generations


def retry_economics(snap: Snapshot) -> RetryEconomics:
    return RetryEconomics(run(snap, "retry_attempts"), run(snap, "retry_wasted_time"))


@dataclass(frozen=True)
class UserActivity:
    top: Rows  # the most active users
    distribution: Rows  # users, mean and percentiles of requests per user
    histogram: Rows  # users per band of requests per user


def user_activity(snap: Snapshot, top: int = 20) -> UserActivity:
    return UserActivity(
        run(snap, "user_top", top=top), run(snap, "user_distribution"), run(snap, "user_histogram")
    )


def latency_histogram(snap: Snapshot, bin_ms: int = 10_000) -> Rows:
    """Completed durations in bins of `bin_ms`, per pipeline."""
    return run(snap, "latency_histogram", bin_ms=bin_ms)


def outcomes_by_day(snap: Snapshot) -> Rows:
    return run(snap, "outcomes_by_day")


def top_prompts(snap: Snapshot, top: int = TOP_PROMPTS) -> Rows:
    return run(snap, "top_prompts", top=top)


def cost_by(snap: Snapshot, by: str = "guild", since: datetime | None = None) -> Rows:
    """What requests cost, by guild, user, model or UTC day (see `cost_by_guild` in the SQL)."""
    if by not in COST_BY:
        raise ValueError(f"by must be one of {', '.join(COST_BY)}, not {by!r}")
    return run(snap, f"cost_by_{by}", since=since)
