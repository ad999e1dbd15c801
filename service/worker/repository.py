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

from service.db.database import Database
from service.db.namedsql import NamedSql
from service.pipeline.run_state import WorkItem
from telemetry.tracing import untraced

LEASES = NamedSql("service.worker", "sql/leases.sql")


class WorkRepository:
    def __init__(self, database: Database) -> None:
        # Each statement here stands alone (the claim locks and updates in one).
        self.database = database

    async def _run(self, statement: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        with untraced():  # lease bookkeeping, not a request's work
            return await self.database.fetch(statement, params)

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[WorkItem]:
        rows = await self._run(
            LEASES["claim"], {"worker": worker, "limit": limit, "lease_seconds": lease_seconds}
        )
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
        return [WorkItem.from_row(row) for row in await self._run(LEASES["claim_unnotified"], params)]

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
        return {row["id"] for row in await self._run(LEASES["heartbeat"], params)}

    async def release(self, worker: str, held: Mapping[uuid.UUID, int]) -> None:
        if not held:
            return
        await self._run(LEASES["release"], self._held(worker, held))

    async def hand_over(self, worker: str, held: Mapping[uuid.UUID, int]) -> None:
        """Let the leases expire now, for another worker to resume the requests at once."""
        if not held:
            return
        await self._run(LEASES["hand_over"], self._held(worker, held))

    async def owe_notification(self, worker: str, request_id: uuid.UUID) -> None:
        """Leave an ended request to the notification sweep (see LEASES["owe_notification"])."""
        await self._run(LEASES["owe_notification"], {"worker": worker, "id": request_id})

    async def stuck(self, pipeline: str | None, budget_seconds: float) -> list[dict[str, Any]]:
        """Generating requests of `pipeline` past its budget, or pending ones if None."""
        statement = LEASES["stuck_pending"] if pipeline is None else LEASES["stuck_generating"]
        params = {"pipeline": pipeline, "budget_seconds": budget_seconds}
        return await self._run(statement, params)
