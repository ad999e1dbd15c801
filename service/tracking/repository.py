"""The only code that writes tracking rows.

Statements run on the `Database` (`service.db`), which turns an unreachable server
into `DatabaseUnavailable` and the state-machine trigger's error into
`InvalidStatusTransition`; a missing row becomes `RequestNotFound` here.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from service.cost.budgets import BudgetDefaults, describe
from service.db.database import Database
from service.db.namedsql import NamedSql
from service.db.statement import Statement
from service.errors import (
    BudgetExceeded,
    ClaimLost,
    InvalidStatusTransition,
    RateLimited,
    RequestNotFound,
)
from service.request_states import TERMINAL, RequestStatus, StageStatus, allowed_sources
from service.settings import RateLimit
from service.tracking.results import CreateResult, StageResult, StepResult, TransitionResult
from service.tracking.step_params import json_param, step_params
from service.tracking.write_values import (
    CreateRequest,
    EventWrite,
    LogEvent,
    RecordCost,
    RecordOperation,
    StageChange,
    Step,
    Transition,
)
from telemetry.tracing import untraced

# The stage a watchdog's ending leaves open: the notification sweep still runs it.
NOTIFICATION_STAGE = "notification"

WRITES = NamedSql("service.tracking", "sql/writes.sql")

AnyWrite = CreateRequest | Transition | RecordOperation | StageChange | RecordCost | LogEvent | Step


def _event_params(event: EventWrite) -> dict[str, Any]:
    return {
        "ev_uid": event.event_uid,
        "ev_type": event.event_type,
        "ev_severity": event.severity.value,
        "ev_stage": event.stage_name,
        "ev_message": event.message,
        "ev_data": json_param(event.data),
        "ev_created_at": event.created_at,
        "ev_service": event.source_service,
        "ev_host": event.source_host,
    }


def _refused(request_id: uuid.UUID, fence: int | None, found: int | None) -> ClaimLost:
    return ClaimLost(
        f"request {request_id} is no longer held by this run",
        request_id=str(request_id),
        claim_generation=fence,
        found_generation=found,
    )


class TrackingRepository:
    """Applies tracking writes to PostgreSQL, one transaction each."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def _run(self, statement: Statement, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        # Every write is a single statement, atomic on its own. It is not a span: the
        # writer records it by what it did (telemetry.database.record_write).
        return await self.database.fetch(statement, params, traced=False)

    async def create(
        self, write: CreateRequest, rate_limit: RateLimit | None = None, budget: BudgetDefaults | None = None
    ) -> CreateResult:
        """Insert the request, its stages and its event; a repeated UUID returns the original.

        With `rate_limit`, raises RateLimited (storing nothing) when the user's window
        is used up; with `budget`, raises BudgetExceeded (storing nothing) when the
        request's estimate would take its user or guild past a budget (the guild's
        own limits in `guild_budgets` replace the defaults). A repeated UUID never
        counts against either.
        """
        document = write.model_dump(mode="json")
        if budget is not None:
            # Not part of the write: a create replayed from the journal is not checked.
            document["budget"] = budget.as_json()
        params = {
            # Encoded once, here (not dumped to JSON, read back and dumped again).
            "w": json.dumps(document),
            "rate_limit": rate_limit.limit if rate_limit else None,
            "rate_window": rate_limit.window_seconds if rate_limit else None,
        }
        row = (await self._run(WRITES["create_request"], params))[0]
        if row["limited"] and rate_limit is not None:
            frees_at = row["window_oldest"] + timedelta(seconds=rate_limit.window_seconds)
            retry_after = max(1, math.ceil((frees_at - write.created_at).total_seconds()))
            raise RateLimited(
                f"rate limit of {rate_limit.limit} requests per {rate_limit.window_seconds} s reached",
                retry_after=retry_after,
            )
        if row["over_budget"] is not None:
            scope = row["over_budget"]
            spent, limit = float(row["budget_spent"]), float(row["budget_limit"])
            resets = row["budget_resets"].isoformat().replace("+00:00", "Z")
            request = write.request
            whose = f"guild {request.guild_id}" if scope.startswith("guild") else f"user {request.user_id}"
            estimate = (
                f"{write.estimated_cost_usd:.2f}" if write.estimated_cost_usd is not None else "unknown"
            )
            raise BudgetExceeded(
                f"{whose}: {describe(scope)} of ${limit:.2f} reached (${spent:.2f} spent or reserved,"
                f" this request ~${estimate}); it resets at {resets}",
                scope=scope,
                spent_usd=spent,
                limit_usd=limit,
                resets_at=resets,
            )
        return CreateResult(
            row["id"], row["correlation_id"], RequestStatus(row["status"]), row["created_at"], row["created"]
        )

    async def transition(self, write: Transition) -> TransitionResult:
        params = {
            "request_id": write.request_id,
            "new_status": write.new_status.value,
            "terminal": write.new_status in TERMINAL,
            "at": write.at,
            "allowed_from": [s.value for s in allowed_sources(write.new_status)],
            "operation_name": write.operation_name,
            "gcs_prefix": write.gcs_prefix,
            "video_urls": write.video_urls,
            "error_message": write.error_message,
            "error_stage": write.error_stage,
            "error_details": json_param(write.error_details),
            "fence": write.fence,
            "take_claim": write.take_claim,
            "close_stages": write.close_stages,
            "keep_open_stage": NOTIFICATION_STAGE,
            **_event_params(write.event),
        }
        row = (await self._run(WRITES["transition"], params))[0]
        if row["found_status"] is None:
            raise RequestNotFound(f"request {write.request_id} not found", request_id=str(write.request_id))
        if row["id"] is None and write.fence is not None and row["found_generation"] != write.fence:
            raise _refused(write.request_id, write.fence, row["found_generation"])
        if row["id"] is None:
            raise InvalidStatusTransition(old_status=row["found_status"], new_status=write.new_status.value)
        return TransitionResult.from_row(row)

    async def record_operation(self, write: RecordOperation) -> None:
        params = {
            "request_id": write.request_id,
            "operation_name": write.operation_name,
            "gcs_prefix": write.gcs_prefix,
            "fence": write.fence,
            **_event_params(write.event),
        }
        rows = await self._run(WRITES["record_operation"], params)
        if not rows:
            raise RequestNotFound(f"request {write.request_id} not found")
        if rows[0]["id"] is None:
            raise _refused(write.request_id, write.fence, rows[0]["found_generation"])

    async def stage_change(self, write: StageChange) -> StageResult:
        params = {
            "request_id": write.request_id,
            "stage_name": write.stage_name,
            "status": write.status.value,
            "at": write.at,
            "starting": write.status == StageStatus.IN_PROGRESS,
            "finishing": write.status in (StageStatus.COMPLETED, StageStatus.FAILED, StageStatus.SKIPPED),
            "attempts": write.attempts,
            "output": json_param(write.output),
            "error_message": write.error_message,
            "error_details": json_param(write.error_details),
            "fence": write.fence,
            **_event_params(write.event),
        }
        rows = await self._run(WRITES["stage_change"], params)
        if not rows:
            raise RequestNotFound(f"request {write.request_id} not found")
        row = rows[0]
        if row["stage_name"] is None:
            if write.fence is not None and row["found_generation"] != write.fence:
                raise _refused(write.request_id, write.fence, row["found_generation"])
            raise RequestNotFound(f"request {write.request_id} has no stage {write.stage_name!r}")
        return StageResult.from_row(row)

    async def step(self, write: Step) -> StepResult:
        """Apply a step's parts in one statement, all or none."""
        rows = await self._run(WRITES["step"], step_params(write))
        first = rows[0]
        if first["found_status"] is None:
            raise RequestNotFound(f"request {write.request_id} not found", request_id=str(write.request_id))
        if first["id"] is None:
            if write.fence is not None and first["found_generation"] != write.fence:
                raise _refused(write.request_id, write.fence, first["found_generation"])
            new_status = next(p.new_status for p in write.parts if isinstance(p, Transition))
            raise InvalidStatusTransition(old_status=first["found_status"], new_status=new_status.value)
        transition = None
        if any(isinstance(part, Transition) for part in write.parts):
            transition = TransitionResult.from_row(first)
        stages = {
            row["stage_name"]: StageResult.from_row(row, prefix="stage_")
            for row in rows
            if row["stage_name"] is not None
        }
        missing = {p.stage_name for p in write.parts if isinstance(p, StageChange)} - stages.keys()
        if missing:
            raise RequestNotFound(f"request {write.request_id} has no stage {sorted(missing)[0]!r}")
        return StepResult(transition, stages)

    async def record_cost(self, write: RecordCost) -> None:
        params = {
            "request_id": write.request_id,
            "cost_usd": None if write.cost_usd is None else str(write.cost_usd),
            "billable_seconds": str(write.billable_seconds),
            "fence": write.fence,
            **_event_params(write.event),
        }
        rows = await self._run(WRITES["record_cost"], params)
        if not rows:
            raise RequestNotFound(f"request {write.request_id} not found")
        if rows[0]["id"] is None:
            raise _refused(write.request_id, write.fence, rows[0]["found_generation"])

    async def log_event(self, write: LogEvent) -> None:
        params = {"request_id": write.event.request_id, "fence": write.fence, **_event_params(write.event)}
        rows = await self._run(WRITES["log_event"], params)
        if not rows:
            raise RequestNotFound(f"request {write.event.request_id} not found")
        if rows[0]["id"] is None:
            raise _refused(write.event.request_id, write.fence, rows[0]["found_generation"])

    async def renew_claim(self, request_id: uuid.UUID, fence: int, lease_seconds: float) -> bool | None:
        """Lengthen a run's lease under its fence: False if the claim is lost, None if the
        request is not in PostgreSQL (yet)."""
        params = {"request_id": request_id, "fence": fence, "lease_seconds": lease_seconds}
        with untraced():  # lease bookkeeping before every external call: no span of its own
            rows = await self._run(WRITES["renew_claim"], params)
        if not rows:
            return None
        return rows[0]["id"] is not None

    async def was_applied(self, write: AnyWrite) -> bool:
        """True if this very write already landed (its event exists)."""
        rows = await self._run(WRITES["event_exists"], {"uid": write.event.event_uid})
        return bool(rows[0]["exists"])

    async def apply(self, write: AnyWrite) -> object:
        """Apply any write; the journal replays through here."""
        match write:
            case CreateRequest():
                return await self.create(write)
            case Transition():
                return await self.transition(write)
            case RecordOperation():
                await self.record_operation(write)
            case StageChange():
                return await self.stage_change(write)
            case RecordCost():
                await self.record_cost(write)
            case LogEvent():
                await self.log_event(write)
            case Step():
                return await self.step(write)
        return None
