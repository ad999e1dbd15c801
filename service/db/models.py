"""SQLAlchemy models: the schema the migrations must produce.

The migrations in `migrations/` are the source of truth for what runs; a test proves
that upgrading a fresh database to head yields exactly these tables, columns,
indexes and constraints. Views, triggers and functions live only in the migrations.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.request_states import RequestStatus, Severity, StageStatus

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TS = DateTime(timezone=True)
USD = Numeric(14, 6)


def _enum(enum_cls: type[Any], name: str) -> Enum:
    return Enum(enum_cls, name=name, values_callable=lambda e: [m.value for m in e])


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class VideoRequest(Base):
    __tablename__ = "video_requests"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    correlation_id: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    pipeline: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'veo'"))
    user_id: Mapped[str] = mapped_column(Text, nullable=False)
    guild_id: Mapped[str | None] = mapped_column(Text)
    channel_id: Mapped[str | None] = mapped_column(Text)
    prompt: Mapped[str] = mapped_column(Text, nullable=False)
    duration_seconds: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("8"))
    aspect_ratio: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'16:9'"))
    resolution: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'720p'"))
    generate_audio: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    parameters: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    status: Mapped[RequestStatus] = mapped_column(
        _enum(RequestStatus, "request_status"), nullable=False, server_default=text("'pending'")
    )
    current_stage: Mapped[str | None] = mapped_column(Text)
    progress_percentage: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("0"))
    operation_name: Mapped[str | None] = mapped_column(Text)
    gcs_prefix: Mapped[str | None] = mapped_column(Text)
    video_urls: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")
    )
    error_message: Mapped[str | None] = mapped_column(Text)
    error_stage: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    retry_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    trace_id: Mapped[str | None] = mapped_column(Text)
    traceparent: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))
    started_at: Mapped[datetime | None] = mapped_column(TS)
    completed_at: Mapped[datetime | None] = mapped_column(TS)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))
    # Work-queue lease: which worker runs this request and until when. Updates that
    # touch only these columns leave updated_at alone (see the updated_at trigger).
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(TS)
    claims: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    # Cost (migration 0010): NULL while unknown, or for good when a billed model has
    # no price; the estimate is the request's reservation against budgets until it ends.
    cost_usd: Mapped[Decimal | None] = mapped_column(USD)
    billable_seconds: Mapped[Decimal] = mapped_column(
        Numeric(12, 3), nullable=False, server_default=text("0")
    )
    estimated_cost_usd: Mapped[Decimal | None] = mapped_column(USD)
    usd_per_second: Mapped[Decimal | None] = mapped_column(USD)
    price_version: Mapped[str | None] = mapped_column(Text)
    # The fence of the current claim: bumped by each claim (and by a watchdog's ending);
    # every write of a run is conditional on the value its claim returned.
    claim_generation: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))

    __table_args__ = (
        CheckConstraint(r"correlation_id ~ '^vvd_[0-9]{13}_[0-9a-f]{8}$'", name="correlation_id_format"),
        CheckConstraint("progress_percentage BETWEEN 0 AND 100", name="progress_range"),
        CheckConstraint("duration_seconds > 0", name="duration_positive"),
        CheckConstraint("retry_count >= 0", name="retry_count_nonnegative"),
        Index("ix_video_requests_user_history", "user_id", text("created_at DESC"), text("id DESC")),
        Index("ix_video_requests_guild_created", "guild_id", "created_at"),
        Index(
            "ix_video_requests_created_at",
            "created_at",
            postgresql_include=["status", "duration_ms"],
        ),
        Index("ix_video_requests_updated_at", "updated_at"),
        Index(
            "ix_video_requests_active",
            "created_at",
            postgresql_where=text("status IN ('pending', 'generating')"),
        ),
    )


class RequestStage(Base):
    __tablename__ = "request_stages"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("video_requests.id", ondelete="CASCADE"), nullable=False
    )
    stage_name: Mapped[str] = mapped_column(Text, nullable=False)
    stage_order: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    status: Mapped[StageStatus] = mapped_column(
        _enum(StageStatus, "stage_status"), nullable=False, server_default=text("'pending'")
    )
    started_at: Mapped[datetime | None] = mapped_column(TS)
    completed_at: Mapped[datetime | None] = mapped_column(TS)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    max_retries: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("3"))
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))
    # The request's created_at, copied in on insert (by a trigger when not given), so
    # the analytics export finds a stage's day partition without joining its request.
    request_created_at: Mapped[datetime] = mapped_column(TS, nullable=False)

    __table_args__ = (
        UniqueConstraint("request_id", "stage_name"),
        CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
        Index("ix_request_stages_updated_at", "updated_at"),
    )


class RequestEvent(Base):
    __tablename__ = "request_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    # Generated by the writer, so that replaying a journaled event is idempotent.
    event_uid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, unique=True)
    # No foreign key: every event is written in the statement that locks its request's
    # row, and a key checked per event doubled PostgreSQL's work per tracking write; a
    # trigger deletes a request's events with it (migrations/functions/).
    request_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    severity: Mapped[Severity] = mapped_column(
        _enum(Severity, "event_severity"), nullable=False, server_default=text("'info'")
    )
    stage_name: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))
    source_service: Mapped[str | None] = mapped_column(Text)
    source_host: Mapped[str | None] = mapped_column(Text)
    # When the database wrote the row (created_at is the writer's time, and a replayed
    # journal write keeps it): the watermark incremental exports read events by.
    recorded_at: Mapped[datetime] = mapped_column(
        TS, nullable=False, server_default=text("clock_timestamp()")
    )

    __table_args__ = (
        Index("ix_request_events_request_id_id", "request_id", "id"),
        Index("ix_request_events_created_at", "created_at"),
        Index("ix_request_events_recorded_at", "recorded_at"),
    )


class RequestTombstone(Base):
    """One row per deleted request, so incremental snapshots learn of deletions.

    `reason` is `retention` for the retention job (snapshots keep those rows as
    history) and `manual` for anything else (snapshots drop them).
    """

    __tablename__ = "request_tombstones"

    request_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))
    reason: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("ix_request_tombstones_deleted_at", "deleted_at"),)


class CircuitBreakerState(Base):
    """The latest published state of one process's breaker for one dependency."""

    __tablename__ = "circuit_breaker_states"

    process_id: Mapped[str] = mapped_column(Text, primary_key=True)
    dependency: Mapped[str] = mapped_column(Text, primary_key=True)
    state: Mapped[str] = mapped_column(Text, nullable=False)
    failure_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    success_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    call_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    rejected_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    failure_threshold: Mapped[int] = mapped_column(Integer, nullable=False)
    reset_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    last_failure_at: Mapped[datetime | None] = mapped_column(TS)
    opened_at: Mapped[datetime | None] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))

    __table_args__ = (
        CheckConstraint("state IN ('closed', 'open', 'half_open')", name="state_known"),
        Index("ix_circuit_breaker_states_updated_at", "updated_at"),
    )


class WebhookDelivery(Base):
    """One callback to one receiver, delivered and retried apart from the request's run.

    `id` is the `X-Reeltrace-Delivery` header, the same on every attempt. `outcome` is
    `pending` until the receiver answers 2xx (`delivered`) or the retry window ends
    (`failed`); `claimed_until` and `claim_token` fence the sweep that holds it.
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("video_requests.id", ondelete="CASCADE"), nullable=False
    )
    event: Mapped[str] = mapped_column(Text, nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    host: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    outcome: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column(TS)
    next_attempt_at: Mapped[datetime | None] = mapped_column(TS)
    deliver_until: Mapped[datetime] = mapped_column(TS, nullable=False)
    claimed_until: Mapped[datetime | None] = mapped_column(TS)
    claim_token: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    delivered_at: Mapped[datetime | None] = mapped_column(TS)
    created_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))

    __table_args__ = (
        CheckConstraint("outcome IN ('pending', 'delivered', 'failed')", name="outcome_known"),
        UniqueConstraint("request_id", "event"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("outcome = 'pending'")),
    )


class RequestRollup(Base):
    """Finished requests per bucket (a minute or an hour of created_at), pipeline and status.

    Kept by a trigger on video_requests (migration 0008); outlives the rows.
    """

    __tablename__ = "request_rollups"

    bucket_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(TS, primary_key=True)
    pipeline: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[RequestStatus] = mapped_column(_enum(RequestStatus, "request_status"), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, nullable=False)
    timed_requests: Mapped[int] = mapped_column(BigInteger, nullable=False)
    duration_sum_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # What the bucket's requests cost (migration 0012); a NULL cost adds nothing.
    cost_usd_sum: Mapped[Decimal] = mapped_column(Numeric(18, 6), nullable=False, server_default=text("0"))

    __table_args__ = (CheckConstraint("bucket_seconds IN (60, 3600)", name="bucket_seconds_known"),)


class RequestRollupSketch(Base):
    """Finished requests per bucket, pipeline, status and DDSketch index of their duration."""

    __tablename__ = "request_rollup_sketches"

    bucket_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[RequestStatus] = mapped_column(_enum(RequestStatus, "request_status"), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(TS, primary_key=True)
    pipeline: Mapped[str] = mapped_column(Text, primary_key=True)
    sketch_index: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (CheckConstraint("bucket_seconds IN (60, 3600)", name="bucket_seconds_known"),)


class StageRollup(Base):
    """Completed stages of finished requests per bucket, pipeline and stage name."""

    __tablename__ = "stage_rollups"

    bucket_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(TS, primary_key=True)
    pipeline: Mapped[str] = mapped_column(Text, primary_key=True)
    stage_name: Mapped[str] = mapped_column(Text, primary_key=True)
    stages: Mapped[int] = mapped_column(BigInteger, nullable=False)
    duration_sum_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (CheckConstraint("bucket_seconds IN (60, 3600)", name="bucket_seconds_known"),)


class ApiKey(Base):
    """API keys, stored as SHA-256 hashes of the secret."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    prefix: Mapped[str] = mapped_column(Text, nullable=False)
    key_hash: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    created_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))
    last_used_at: Mapped[datetime | None] = mapped_column(TS)
    revoked_at: Mapped[datetime | None] = mapped_column(TS)

    __table_args__ = (
        CheckConstraint(
            "scopes <@ ARRAY['submit', 'read', 'admin']::text[] AND cardinality(scopes) > 0",
            name="scopes_known",
        ),
    )


class CorpusDocument(Base):
    """One imported OER document: where it comes from, its licence, the hash of what was imported."""

    __tablename__ = "corpus_documents"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    # Its front-matter `key`, else its URL, else its absolute path: what makes a re-import a replacement.
    key: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    licence: Mapped[str] = mapped_column(Text, nullable=False)
    url: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(Text, nullable=False)
    embedding_model: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    imported_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))


class CorpusChunk(Base):
    """A chunk of a document, with its generated tsvector and (with pgvector) its embedding."""

    __tablename__ = "corpus_chunks"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    document_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("corpus_documents.id", ondelete="CASCADE"), nullable=False
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    heading: Mapped[str] = mapped_column(Text, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR,
        Computed(
            "(setweight(to_tsvector('english'::regconfig, heading), 'A'::\"char\") || "
            "setweight(to_tsvector('english'::regconfig, text), 'B'::\"char\"))",
            persisted=True,
        ),
        nullable=False,
    )
    # Present only where the pgvector extension was available when the corpus was created.
    embedding: Mapped[Any] = mapped_column(VECTOR(768), nullable=True)

    __table_args__ = (
        UniqueConstraint("document_id", "position"),
        Index("ix_corpus_chunks_tsv", "tsv", postgresql_using="gin"),
        Index(
            "ix_corpus_chunks_embedding",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
    )


class GuildBudget(Base):
    """A guild's own daily/monthly limits (USD); NULL falls back to the setting."""

    __tablename__ = "guild_budgets"

    guild_id: Mapped[str] = mapped_column(Text, primary_key=True)
    daily_usd: Mapped[Decimal | None] = mapped_column(USD)
    monthly_usd: Mapped[Decimal | None] = mapped_column(USD)
    updated_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=text("now()"))

    __table_args__ = (CheckConstraint("daily_usd >= 0 AND monthly_usd >= 0", name="limits_nonnegative"),)
