"""A request as a unit of work, and the state a run carries between stages."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from service.request_states import RequestStatus, StageStatus
from service.tracking.cost_tracking import Spend
from service.tracking.schemas import RequestRead, StageRead
from service.video_request import VideoRequest

# A stage's output type (a TypedDict its definition declares).
Out = TypeVar("Out", bound=Mapping[str, Any])


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A claimed request: the request value, and what its run needs of its row."""

    id: uuid.UUID
    correlation_id: str
    request: VideoRequest
    status: RequestStatus
    operation_name: str | None
    gcs_prefix: str | None
    trace_id: str | None
    traceparent: str | None
    created_at: datetime
    claims: int = 1
    # The fence of this run's claim (0: never claimed, e.g. run in the API process).
    claim_generation: int = 0

    @property
    def pipeline(self) -> str:
        return self.request.pipeline

    @classmethod
    def from_row(cls, row: Any) -> WorkItem:
        return cls(
            id=row["id"],
            correlation_id=row["correlation_id"],
            request=VideoRequest.from_record(row),
            status=RequestStatus(row["status"]),
            operation_name=row["operation_name"],
            gcs_prefix=row["gcs_prefix"],
            trace_id=row["trace_id"],
            traceparent=row["traceparent"],
            created_at=row["created_at"],
            claims=row["claims"],
            claim_generation=row["claim_generation"],
        )


@dataclass
class StageState:
    status: StageStatus = StageStatus.PENDING
    attempts: int = 0
    max_retries: int = 3
    started_at: datetime | None = None
    output: dict[str, Any] | None = None

    @classmethod
    def from_read(cls, stage: StageRead) -> StageState:
        return cls(stage.status, stage.attempts, stage.max_retries, stage.started_at, stage.output)

    @property
    def done(self) -> bool:
        return self.status in (StageStatus.COMPLETED, StageStatus.SKIPPED)


@dataclass
class RunState:
    """What a run knows: the request, its stage rows, and outputs passed between stages."""

    item: WorkItem
    stages: dict[str, StageState]
    operation_name: str | None = None
    gcs_prefix: str | None = None
    video_urls: list[str] = field(default_factory=list)
    final_status: RequestStatus | None = None
    tracked: bool = True
    """False in degraded mode (PostgreSQL unreachable): nothing can be read back."""
    unsettled_key: str | None = None
    """Idempotency key of this run's last generation start if it failed without a clear
    refusal: the operation may exist, so a retry starts with the same key."""
    spend: Spend = field(default_factory=Spend)
    """The request's cost so far (every billed attempt)."""
    usd_per_second: Decimal | None = None
    price_version: str | None = None
    """The price the request was given at submit (None: priced now, from the current table)."""
    outputs: Mapping[type[Any], str] = field(default_factory=dict)
    """The stage whose output each output type is (as the pipeline's definitions declare)."""

    @classmethod
    def fresh(
        cls,
        item: WorkItem,
        stage_names: list[str],
        max_retries: dict[str, int],
        outputs: Mapping[type[Any], str],
    ) -> RunState:
        stages = {name: StageState(max_retries=max_retries[name]) for name in stage_names}
        return cls(item, stages, item.operation_name, item.gcs_prefix, outputs=outputs)

    @classmethod
    def from_read(cls, item: WorkItem, read: RequestRead, outputs: Mapping[type[Any], str]) -> RunState:
        stages = {s.name: StageState.from_read(s) for s in read.stages}
        # A NULL cost with billed seconds is an unpriced attempt (a NULL cost after an
        # unpriced per-call charge alone reads as unbilled: its seconds are 0).
        spend = Spend(
            None if read.cost_usd is None else Decimal(str(read.cost_usd)),
            Decimal(str(read.billable_seconds)),
            billed=read.cost_usd is not None or read.billable_seconds > 0,
        )
        unit = None if read.usd_per_second is None else Decimal(str(read.usd_per_second))
        return cls(
            item, stages, read.operation_name, read.gcs_prefix,
            spend=spend, usd_per_second=unit, price_version=read.price_version,
            outputs=outputs,
        )  # fmt: skip

    def output(self, kind: type[Out]) -> Out:
        """The output of the stage declaring `kind` ({} if the pipeline has no such stage, or it none)."""
        row = self.stages.get(self.outputs.get(kind, ""))
        return cast("Out", (row.output if row else None) or {})

    @property
    def request(self) -> VideoRequest:
        return self.item.request
