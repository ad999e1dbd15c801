"""The parameters of a step (`service.tracking.write_values.Step`): its parts merged into the
one statement that applies them (`step` in sql/writes.sql)."""

from __future__ import annotations

import json
from typing import Any

from service.request_states import TERMINAL, StageStatus, allowed_sources
from service.tracking.write_values import (
    EventWrite,
    RecordCost,
    RecordOperation,
    StageChange,
    Step,
    Transition,
)


def json_param(value: Any) -> str | None:
    """A JSON document parameter (None stays NULL); the tracking statements cast it to jsonb."""
    return None if value is None else json.dumps(value, default=str)


def _stage_event(event: EventWrite, *, if_changed: bool = False) -> dict[str, Any]:
    return {
        "event_uid": str(event.event_uid),
        "event_type": event.event_type,
        "severity": event.severity.value,
        "stage_name": event.stage_name,
        "message": event.message,
        "data": event.data,
        "created_at": event.created_at.isoformat(),
        "source_service": event.source_service,
        "source_host": event.source_host,
        "if_changed": if_changed,
    }


def step_params(write: Step) -> dict[str, Any]:
    """The statement's parameters: the parts merged (each column set by one part at most)."""
    params: dict[str, Any] = {
        "request_id": write.request_id,
        "fence": write.fence,
        "new_status": None,
        "allowed_from": None,
        "terminal": False,
        "at": None,
        "operation_name": None,
        "gcs_prefix": None,
        "video_urls": None,
        "error_message": None,
        "error_stage": None,
        "error_details": None,
        "record_cost": False,
        "cost_usd": None,
        "billable_seconds": None,
        # Only a run's own (fenced) step may clear the lease its claim holds.
        "release_lease": write.release_lease and write.fence is not None,
    }
    stages: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for part in write.parts:
        match part:
            case Transition():
                params.update(
                    new_status=part.new_status.value,
                    allowed_from=[s.value for s in allowed_sources(part.new_status)],
                    terminal=part.new_status in TERMINAL,
                    at=part.at,
                    video_urls=part.video_urls,
                    error_message=part.error_message,
                    error_stage=part.error_stage,
                    error_details=json_param(part.error_details),
                )
                params["operation_name"] = part.operation_name or params["operation_name"]
                params["gcs_prefix"] = part.gcs_prefix or params["gcs_prefix"]
            case StageChange():
                row = {
                    "stage_name": part.stage_name,
                    "status": part.status.value,
                    "starting": part.status == StageStatus.IN_PROGRESS,
                    "finishing": part.status in _FINISHING,
                    "started_at": part.at.isoformat(),
                    "at": part.at.isoformat(),
                    "attempts": part.attempts,
                    "output": part.output,
                    "error_message": part.error_message,
                    "error_details": part.error_details,
                }
                started = stages.get(part.stage_name)
                if started is not None:
                    # Started earlier in this step: the row gets the start and the ending.
                    row.update(
                        starting=True,
                        started_at=started["started_at"],
                        attempts=part.attempts if part.attempts is not None else started["attempts"],
                    )
                stages[part.stage_name] = row
            case RecordCost():
                params.update(
                    record_cost=True,
                    cost_usd=None if part.cost_usd is None else str(part.cost_usd),
                    billable_seconds=str(part.billable_seconds),
                )
            case RecordOperation():
                params.update(operation_name=part.operation_name, gcs_prefix=part.gcs_prefix)
        events.append(_stage_event(part.event, if_changed=isinstance(part, Transition)))
    params["stages"] = json.dumps(list(stages.values()), default=str)
    params["events"] = json.dumps(events, default=str)
    return params


_FINISHING = (StageStatus.COMPLETED, StageStatus.FAILED, StageStatus.SKIPPED)
