"""Work-queue SQL: claiming requests with leases, heartbeats, releases, stuck requests.

The request row is the unit of work. A claim takes open requests whose lease is free
or expired, oldest first, with `FOR UPDATE SKIP LOCKED`, so concurrent workers on any
number of machines never take the same request; the lease columns live on the row
itself, so PostgreSQL re-checks them on the locked row version.

Each claim bumps `claim_generation` and returns it: the fence of the run (see
`service.tracking.fence`). Heartbeats, releases and hand-overs are conditional on it
too, so a run that lost its claim can neither renew nor release the new owner's lease.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import TextClause, text

from service.db.database import Database
from service.pipeline.work import WorkItem
from telemetry.tracing import untraced

# The columns of a claimed request that a run needs (`WorkItem`).
_WORK_ITEM_COLUMNS = """v.id, v.correlation_id, v.pipeline, v.user_id, v.guild_id, v.prompt, v.duration_seconds,
          v.aspect_ratio, v.resolution, v.generate_audio, v.parameters, v.status, v.operation_name,
          v.gcs_prefix, v.trace_id, v.traceparent, v.created_at, v.claims, v.claim_generation"""

CLAIM = text(
    f"""
UPDATE video_requests v
SET lease_owner = :worker,
    lease_expires_at = now() + make_interval(secs => :lease_seconds),
    claims = v.claims + 1,
    claim_generation = v.claim_generation + 1
FROM (
    SELECT id FROM video_requests
    WHERE status IN ('pending', 'generating')
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    ORDER BY created_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
) AS free
WHERE v.id = free.id
RETURNING {_WORK_ITEM_COLUMNS}
"""
)

# The (id, claim generation) pairs a worker holds.
_HELD = """FROM unnest(CAST(:ids AS uuid[]), CAST(:generations AS bigint[])) AS held(id, generation)
WHERE v.id = held.id AND v.claim_generation = held.generation AND v.lease_owner = :worker"""

HEARTBEAT = text(
    f"""
UPDATE video_requests v
SET lease_expires_at = now() + make_interval(secs => :lease_seconds)
{_HELD}
RETURNING v.id
"""
)

RELEASE = text(
    f"""
UPDATE video_requests v SET lease_owner = NULL, lease_expires_at = NULL
{_HELD}
"""
)

# A run stopped before its end hands its request over: the lease expires at once (so
# another worker claims it now) but keeps its owner, which marks a terminal request
# whose run never finished its notification (see CLAIM_UNNOTIFIED).
HAND_OVER = text(
    f"""
UPDATE video_requests v SET lease_expires_at = now()
{_HELD}
"""
)

# Terminal requests still holding an expired lease: the run that ended them died (or
# was stopped) before the notification stage, which runs after the terminal status.
# A finished run always clears its lease, so these are exactly the unfinished ones.
# Only recently ended requests are looked at, on the updated_at index (lease changes
# do not move updated_at), so the sweep stays cheap on a large table.
CLAIM_UNNOTIFIED = text(
    f"""
UPDATE video_requests v
SET lease_owner = :worker,
    lease_expires_at = now() + make_interval(secs => :lease_seconds),
    claims = v.claims + 1,
    claim_generation = v.claim_generation + 1
FROM (
    SELECT id FROM video_requests
    WHERE updated_at > now() - make_interval(secs => :window_seconds)
      AND status IN ('completed', 'failed', 'timeout')
      AND lease_owner IS NOT NULL AND lease_expires_at < now()
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
) AS free
WHERE v.id = free.id
RETURNING {_WORK_ITEM_COLUMNS}
"""
)

# A request the watchdog ended still owes its notification, which no run will send: the
# run it cut off (if any) is cancelled or pre-empted, and a request still queued had none.
# Its lease expires now, in the watchdog's name if nobody held it, so the notification
# sweep (CLAIM_UNNOTIFIED) of any worker takes it over.
OWE_NOTIFICATION = text(
    """
UPDATE video_requests SET lease_owner = coalesce(lease_owner, :worker), lease_expires_at = now()
WHERE id = :id AND status IN ('completed', 'failed', 'timeout')
"""
)

STUCK_GENERATING = text(
    """
SELECT id, pipeline, current_stage, lease_owner, claim_generation,
       extract(epoch FROM (now() - started_at))::double precision AS age_seconds
FROM video_requests
WHERE status = 'generating' AND pipeline = :pipeline
  AND started_at < now() - make_interval(secs => :budget_seconds)
LIMIT 500
"""
)

STUCK_PENDING = text(
    """
SELECT id, pipeline, lease_owner, claim_generation,
       extract(epoch FROM (now() - created_at))::double precision AS age_seconds
FROM video_requests
WHERE status = 'pending' AND created_at < now() - make_interval(secs => :budget_seconds)
LIMIT 500
"""
)


class WorkRepository:
    def __init__(self, database: Database) -> None:
        # Each statement here stands alone (the claim locks and updates in one).
        self.database = database

    async def _run(self, statement: TextClause, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        with untraced():  # lease bookkeeping, not a request's work
            return await self.database.fetch(statement, params)

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[WorkItem]:
        rows = await self._run(CLAIM, {"worker": worker, "limit": limit, "lease_seconds": lease_seconds})
        return [WorkItem.from_row(row) for row in rows]

    async def claim_unnotified(
        self, worker: str, limit: int, lease_seconds: float, window_seconds: float
    ) -> list[WorkItem]:
        """Claim terminal requests whose run died before notifying (ended within the window)."""
        params = {
            "worker": worker,
            "limit": limit,
            "lease_seconds": lease_seconds,
            "window_seconds": window_seconds,
        }
        return [WorkItem.from_row(row) for row in await self._run(CLAIM_UNNOTIFIED, params)]

    @staticmethod
    def _held(worker: str, held: Mapping[uuid.UUID, int]) -> dict[str, Any]:
        return {"worker": worker, "ids": list(held), "generations": list(held.values())}

    async def heartbeat(
        self, worker: str, held: Mapping[uuid.UUID, int], lease_seconds: float
    ) -> set[uuid.UUID]:
        """Extend the leases still held under their claim generations; returns their ids."""
        if not held:
            return set()
        params = {**self._held(worker, held), "lease_seconds": lease_seconds}
        return {row["id"] for row in await self._run(HEARTBEAT, params)}

    async def release(self, worker: str, held: Mapping[uuid.UUID, int]) -> None:
        if not held:
            return
        await self._run(RELEASE, self._held(worker, held))

    async def hand_over(self, worker: str, held: Mapping[uuid.UUID, int]) -> None:
        """Let the leases expire now, for another worker to resume the requests at once."""
        if not held:
            return
        await self._run(HAND_OVER, self._held(worker, held))

    async def owe_notification(self, worker: str, request_id: uuid.UUID) -> None:
        """Leave an ended request to the notification sweep (see OWE_NOTIFICATION)."""
        await self._run(OWE_NOTIFICATION, {"worker": worker, "id": request_id})

    async def stuck(self, pipeline: str | None, budget_seconds: float) -> list[dict[str, Any]]:
        """Generating requests of `pipeline` past its budget, or pending ones if None."""
        statement = STUCK_PENDING if pipeline is None else STUCK_GENERATING
        params = {"pipeline": pipeline, "budget_seconds": budget_seconds}
        return await self._run(statement, params)
