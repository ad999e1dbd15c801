"""What the tracking writes report back: the created request, a status change, a stage
row and a step (several changes sent together)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step changed: the status change (if it had one) and each stage row."""

    transition: TransitionResult | None
    stages: dict[str, StageResult]
