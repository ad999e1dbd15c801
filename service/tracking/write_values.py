"""Tracking writes as values.

Every change the tracker makes is one of these models. The repository applies them;
when PostgreSQL is unreachable they are appended to the journal as JSON and replayed
later through the same repository code. Each write carries its own timestamps and
absolute values (never increments), so applying one twice changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from service.request_states import RequestStatus, Severity, StageStatus
from service.video_request import VideoRequest


class _Write(BaseModel):
    model_config = ConfigDict(frozen=True)


class _Fenced(_Write):
    # The claim generation the request must still have for the write to apply (None:
    # not a run's write, e.g. an operator's). Journaled with the write, so a replay of
    # a run that has lost its claim is refused as the live write would have been.
    fence: int | None = None


class EventWrite(_Write):
    event_uid: uuid.UUID = Field(default_factory=uuid.uuid4)
    request_id: uuid.UUID
    event_type: str
    severity: Severity = Severity.INFO
    stage_name: str | None = None
    message: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    source_service: str | None = None
    source_host: str | None = None


class StageSpec(_Write):
    name: str
    order: int
    max_retries: int


class CreateRequest(_Write):
    """A new request. Its JSON is flat, the request's record beside the write's own
    fields, as the create function reads it (and as older journals hold it)."""

    op: Literal["create"] = "create"
    id: uuid.UUID
    correlation_id: str
    # Written as its record (`_flat`), not as the model.
    request: VideoRequest = Field(exclude=True)
    trace_id: str | None
    traceparent: str | None
    created_at: datetime
    stages: list[StageSpec]
    event: EventWrite
    # Set when the create is journaled and the request runs in-process meanwhile:
    # once replayed, workers leave it alone until this lease expires.
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    # The price at submit (None: the model has no price); a later price table does
    # not reprice this request.
    estimated_cost_usd: Decimal | None = None
    usd_per_second: Decimal | None = None
    price_version: str | None = None

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {**self.request.to_record(), **data}

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "request" not in data:
            return {**data, "request": VideoRequest.from_record(data)}
        return data


class Transition(_Fenced):
    op: Literal["transition"] = "transition"
    request_id: uuid.UUID
    new_status: RequestStatus
    at: datetime
    operation_name: str | None = None
    gcs_prefix: str | None = None
    video_urls: list[str] | None = None
    error_message: str | None = None
    error_stage: str | None = None
    error_details: dict[str, Any] | None = None
    event: EventWrite
    # The watchdog's ending takes the claim from whichever run holds it (bumping the
    # generation) and closes the stages the run leaves open.
    take_claim: bool = False
    close_stages: bool = False


class RecordOperation(_Fenced):
    """The generation backend started its long-running operation."""

    op: Literal["operation"] = "operation"
    request_id: uuid.UUID
    operation_name: str
    gcs_prefix: str | None
    event: EventWrite


class StageChange(_Fenced):
    op: Literal["stage"] = "stage"
    request_id: uuid.UUID
    stage_name: str
    status: StageStatus
    at: datetime
    attempts: int | None = None
    output: dict[str, Any] | None = None
    error_message: str | None = None
    error_details: dict[str, Any] | None = None
    event: EventWrite


class RecordCost(_Fenced):
    """A generation attempt was billed: the request's totals so far (absolute values)."""

    op: Literal["cost"] = "cost"
    request_id: uuid.UUID
    cost_usd: Decimal | None
    billable_seconds: Decimal
    event: EventWrite


class LogEvent(_Fenced):
    op: Literal["event"] = "event"
    event: EventWrite


StepPart = Annotated[
    Transition | StageChange | RecordCost | RecordOperation | LogEvent, Field(discriminator="op")
]


class Step(_Fenced):
    """Several changes of one request, applied together in one statement.

    A run folds the writes it makes one after another, with no external call between
    them, into one: a stage's completion with the next stage's start, the last
    stage with the ending and the skipped notification. Its parts keep their own
    events (one row each), and a journaled step replays as the one write it was.
    At most one part per stage row, and at most one status change, cost or operation.
    """

    op: Literal["step"] = "step"
    request_id: uuid.UUID
    parts: list[StepPart]
    # The run is over: its lease is cleared in the same statement (fenced writes only).
    release_lease: bool = False

    @property
    def event(self) -> EventWrite:
        """The first part's event: all land together, so it tells whether the step did."""
        return self.parts[0].event


TrackingWrite = Annotated[
    CreateRequest | Transition | RecordOperation | StageChange | RecordCost | LogEvent | Step,
    Field(discriminator="op"),
]
