"""Read models: what queries return and the API serialises."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from service.request_states import RequestStatus, Severity, StageStatus


class _Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StageRead(_Read):
    name: str
    order: int
    status: StageStatus
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    attempts: int
    max_retries: int
    error_message: str | None
    output: dict[str, Any] | None = None


class RequestSummary(_Read):
    id: uuid.UUID
    correlation_id: str
    pipeline: str
    user_id: str
    guild_id: str | None
    channel_id: str | None
    prompt: str
    status: RequestStatus
    current_stage: str | None
    progress_percentage: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    error_message: str | None
    error_stage: str | None
    trace_id: str | None


class RequestRead(RequestSummary):
    duration_seconds: int
    aspect_ratio: str
    resolution: str
    generate_audio: bool
    parameters: dict[str, Any]
    operation_name: str | None
    gcs_prefix: str | None
    video_urls: list[str]
    error_details: dict[str, Any] | None
    retry_count: int
    updated_at: datetime
    queueing_seconds: float | None = Field(description="started_at - created_at")
    notification_due: bool = Field(
        default=False,
        description="The request has ended and a worker is still to run its notification stage.",
    )
    cost_usd: float | None = Field(
        default=None,
        description="What the request cost, every billed generation attempt included; null while "
        "unknown, or when a billed model has no price.",
    )
    billable_seconds: float = Field(default=0.0, description="Output seconds billed, all attempts.")
    estimated_cost_usd: float | None = Field(
        default=None, description="The estimate reserved against budgets at submit."
    )
    usd_per_second: float | None = Field(default=None, description="The unit price at submit.")
    price_version: str | None = Field(default=None, description="The price table that priced it.")
    stages: list[StageRead]


class EventRead(_Read):
    id: int
    request_id: uuid.UUID
    event_type: str
    severity: Severity
    stage_name: str | None
    message: str | None
    data: dict[str, Any]
    created_at: datetime
    source_service: str | None
    source_host: str | None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")


class LatencyPercentiles(BaseModel):
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    avg_ms: float | None = Field(description="Exact, from the rollups' sums or the rows.")
    estimated: bool = Field(
        default=False,
        description="True when P50/P95/P99 come from the rollups' duration sketch, false when exact.",
    )
    relative_error: float | None = Field(
        default=None,
        description="Bound on the estimated percentiles' error relative to the exact value "
        "(0.01: within 1 %); null when exact.",
    )


class DashboardRead(BaseModel):
    window_hours: int
    since: datetime
    total_requests: int
    counts_by_status: dict[str, int]
    completed_latency: LatencyPercentiles
    failure_rate_pct: float | None = Field(description="(failed + timeout) / terminal, in percent")
    active_requests: int
    spend_usd: float = Field(
        default=0.0,
        description="What the requests created in the window cost, in USD (cost_usd summed: finished "
        "requests from the rollups, open ones' billed attempts so far from the rows). Exact, not "
        "estimated; a request whose model has no price (cost_usd null) adds nothing.",
    )
    spend_today_usd: float = Field(
        default=0.0,
        description="The same sum over the requests created since 00:00 UTC today (the day "
        "the daily budgets count).",
    )


class HourlyBucket(BaseModel):
    hour: datetime
    total_requests: int
    completed: int
    failed: int
    timed_out: int
    active: int
    failure_rate_pct: float | None
    avg_duration_ms: float | None
    p95_duration_ms: float | None
    p50_duration_ms: float | None = Field(
        default=None,
        description="Median completed duration; estimated from the rollups' sketch like P95 "
        "(p95_estimated and p95_relative_error apply to it), exact with exact=true.",
    )
    stage_avg_duration_ms: dict[str, float] = Field(default_factory=dict)
    p95_estimated: bool = Field(
        default=False,
        description="True when p95_duration_ms (and p50_duration_ms) come from the rollups' sketch.",
    )
    p95_relative_error: float | None = Field(
        default=None,
        description="Bound on p95_duration_ms's (and p50_duration_ms's) error relative to the exact "
        "value; null when exact.",
    )
