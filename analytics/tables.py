"""The three snapshot tables: their Arrow schemas, keys and day partitioning.

The column order here is the column order of the COPY queries in `sql/export.sql`.
Timestamps are UTC microseconds; UUIDs and enums are strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
USD = pa.decimal128(14, 6)


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, pa.DataType], ...]
    key: str  # the primary key: a re-exported row replaces the row with the same key
    request_key: str  # the request a row belongs to: a purged request takes its rows along
    day_from: str  # the timestamp whose UTC date names the row's day partition
    dictionary: tuple[str, ...]  # low-cardinality columns worth dictionary-encoding

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(list(self.columns))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def copy_query(self) -> str:
        return f"copy_{self.name}"

    @property
    def count_query(self) -> str:
        return f"count_{self.name}"

    def empty(self) -> pa.Table:
        return self.schema.empty_table()


VIDEO_REQUESTS = TableSpec(
    name="video_requests",
    columns=(
        ("id", pa.string()),
        ("correlation_id", pa.string()),
        ("pipeline", pa.string()),
        ("user_id", pa.string()),
        ("guild_id", pa.string()),
        ("channel_id", pa.string()),
        ("prompt", pa.string()),
        ("duration_seconds", pa.int16()),
        ("aspect_ratio", pa.string()),
        ("resolution", pa.string()),
        ("generate_audio", pa.bool_()),
        ("status", pa.string()),
        ("current_stage", pa.string()),
        ("progress_percentage", pa.int16()),
        ("error_message", pa.string()),
        ("error_stage", pa.string()),
        ("retry_count", pa.int32()),
        ("trace_id", pa.string()),
        ("created_at", TS),
        ("started_at", TS),
        ("completed_at", TS),
        ("duration_ms", pa.int64()),
        ("updated_at", TS),
        # Cost (exact decimals, as PostgreSQL's numeric): null while unknown or unpriced.
        ("cost_usd", USD),
        ("billable_seconds", pa.decimal128(12, 3)),
        ("estimated_cost_usd", USD),
        ("price_version", pa.string()),
    ),
    key="id",
    request_key="id",
    day_from="created_at",
    dictionary=(
        "pipeline",
        "user_id",
        "guild_id",
        "channel_id",
        "prompt",
        "aspect_ratio",
        "resolution",
        "status",
        "current_stage",
        "error_message",
        "error_stage",
        "price_version",
    ),
)

REQUEST_STAGES = TableSpec(
    name="request_stages",
    columns=(
        ("id", pa.int64()),
        ("request_id", pa.string()),
        ("stage_name", pa.string()),
        ("stage_order", pa.int16()),
        ("status", pa.string()),
        ("started_at", TS),
        ("completed_at", TS),
        ("duration_ms", pa.int64()),
        ("attempts", pa.int32()),
        ("max_retries", pa.int32()),
        ("error_message", pa.string()),
        ("updated_at", TS),
        ("request_created_at", TS),
    ),
    key="id",
    request_key="request_id",
    day_from="request_created_at",
    dictionary=("stage_name", "status", "error_message"),
)

REQUEST_EVENTS = TableSpec(
    name="request_events",
    columns=(
        ("id", pa.int64()),
        ("request_id", pa.string()),
        ("event_type", pa.string()),
        ("severity", pa.string()),
        ("stage_name", pa.string()),
        ("message", pa.string()),
        ("data", pa.string()),
        ("created_at", TS),
        ("source_service", pa.string()),
    ),
    key="id",
    request_key="request_id",
    day_from="created_at",
    dictionary=("event_type", "severity", "stage_name", "message", "source_service"),
)

TABLES: tuple[TableSpec, ...] = (VIDEO_REQUESTS, REQUEST_STAGES, REQUEST_EVENTS)
BY_NAME = {t.name: t for t in TABLES}
