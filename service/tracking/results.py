"""What the tracking writes report back: the created request, a status change, a stage
row and a step (several changes sent together)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.request_states import RequestStatus, StageStatus


@dataclass(frozen=True, slots=True)
class CreateResult:
    id: uuid.UUID
    correlation_id: str
    status: RequestStatus
    created_at: datetime
    created: bool


@dataclass(frozen=True, slots=True)
class TransitionResult:
    request_id: uuid.UUID
    correlation_id: str
    pipeline: str
    aspect_ratio: str
    old_status: RequestStatus
    new_status: RequestStatus
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    error_message: str | None

    @property
    def changed(self) -> bool:
        return self.old_status != self.new_status

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TransitionResult:
        """From the request columns a status change returns (`transition`, `step`)."""
        return cls(
            request_id=row["id"],
            correlation_id=row["correlation_id"],
            pipeline=row["pipeline"],
            aspect_ratio=row["aspect_ratio"],
            old_status=RequestStatus(row["old_status"]),
            new_status=RequestStatus(row["status"]),
            created_at=row["created_at"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            duration_ms=row["duration_ms"],
            error_message=row["error_message"],
        )


@dataclass(frozen=True, slots=True)
class StageResult:
    stage_name: str
    stage_order: int
    status: StageStatus
    attempts: int
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    progress_percentage: int
    retry_count: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any], prefix: str = "") -> StageResult:
        """From a stage row's columns; `prefix` names the row's own status and times where
        they share a result row with the request's (`step` returns them as `stage_...`)."""
        return cls(
            stage_name=row["stage_name"],
            stage_order=row["stage_order"],
            status=StageStatus(row[f"{prefix}status"]),
            attempts=row["attempts"],
            started_at=row[f"{prefix}started_at"],
            completed_at=row[f"{prefix}completed_at"],
            duration_ms=row[f"{prefix}duration_ms"],
            progress_percentage=row["progress_percentage"],
            retry_count=row["retry_count"],
        )


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step changed: the status change (if it had one) and each stage row."""

    transition: TransitionResult | None
    stages: dict[str, StageResult]
