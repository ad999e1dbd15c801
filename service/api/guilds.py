"""Guild statistics, answered by DuckDB from the latest analytics snapshot."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from analytics import queries
from analytics.errors import SnapshotCorrupt, SnapshotNotFound
from analytics.reader import open_snapshot
from service.api import responses
from service.api.deps import RuntimeDep
from service.api.schemas import ErrorBody
from service.errors import SnapshotUnavailable

router = APIRouter(prefix="/api/v1/guilds", tags=["analytics"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    # The router is included with the read scope (service.app), so these answer too.
    **responses.errors(*responses.AUTH),
    422: {
        "model": ErrorBody,
        "description": "Invalid input; `detail` names the field (e.g. `query.bucket`).",
    },
    503: {
        "model": ErrorBody,
        "description": "No analytics snapshot has been exported yet (or it cannot be read).",
    },
}


class SnapshotRead(BaseModel):
    version: str
    watermark: datetime = Field(description="Every change stamped before this instant is in the snapshot.")
    exported_at: datetime
    age_seconds: float = Field(
        description="How far behind PostgreSQL the answer is: now minus the watermark."
    )


class PromptCountRead(BaseModel):
    prompt: str = Field(description="Lower-cased, whitespace collapsed and trimmed.")
    requests: int


class GuildBucketRead(BaseModel):
    bucket_start: date = Field(description="The UTC day, Monday of the week, or first of the month.")
    total: int
    by_status: dict[str, int]
    avg_completed_duration_ms: float | None
    cost_usd: float = Field(
        description="What the bucket's requests cost (USD, every billed attempt; unpriced ones excluded)."
    )
    top_prompts: list[PromptCountRead]


class GuildStatsRead(BaseModel):
    guild_id: str
    bucket: Literal["day", "week", "month"]
    snapshot: SnapshotRead
    buckets: list[GuildBucketRead]


def _guild_stats(root: FsPath, guild_id: str, bucket: str) -> queries.GuildStats:
    try:
        with open_snapshot(root) as snap:
            return queries.guild_stats(snap, guild_id, bucket)
    except SnapshotNotFound as exc:
        raise SnapshotUnavailable(
            "no analytics snapshot yet: run `reeltrace export` or set REELTRACE_EXPORT_INTERVAL"
        ) from exc
    except SnapshotCorrupt as exc:
        raise SnapshotUnavailable(f"the analytics snapshot cannot be read: {exc}") from exc


@router.get("/{guild_id}/stats", response_model=GuildStatsRead, responses=_RESPONSES)
async def guild_stats(
    runtime: RuntimeDep,
    guild_id: Annotated[str, Path(min_length=1, max_length=64)],
    bucket: Annotated[
        Literal["day", "week", "month"], Query(description="The time bucket the figures are grouped by.")
    ] = "day",
) -> GuildStatsRead:
    """Per time bucket: requests by status, average completed duration, spend and the top-10 prompts.

    Answered by DuckDB from the latest exported snapshot, not from PostgreSQL; the
    `snapshot` object says how recent that is.
    """
    stats = await asyncio.to_thread(_guild_stats, runtime.settings.snapshot_dir, guild_id, bucket)
    info = stats.snapshot
    return GuildStatsRead(
        guild_id=stats.guild_id,
        bucket=stats.bucket,
        snapshot=SnapshotRead(
            version=info.version,
            watermark=info.watermark,
            exported_at=info.exported_at,
            age_seconds=round(info.age_seconds(), 3),
        ),
        buckets=[
            GuildBucketRead(
                bucket_start=b.bucket_start,
                total=b.total,
                by_status=b.by_status,
                avg_completed_duration_ms=b.avg_completed_duration_ms,
                cost_usd=float(b.cost_usd),
                top_prompts=[PromptCountRead(prompt=p.prompt, requests=p.requests) for p in b.top_prompts],
            )
            for b in stats.buckets
        ],
    )
