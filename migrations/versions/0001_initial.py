"""Initial schema: requests, stages, events, tombstones, API keys, views and guards.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)

request_status = pg.ENUM(
    "pending", "generating", "completed", "failed", "timeout", name="request_status", create_type=False
)
stage_status = pg.ENUM(
    "pending", "in_progress", "completed", "failed", "skipped", name="stage_status", create_type=False
)
event_severity = pg.ENUM("info", "warning", "error", "critical", name="event_severity", create_type=False)

# The state machine, again in the database: a request enters as `pending` and moves
# only along pending -> generating -> completed | failed | timeout. Setting the same
# status again is allowed (the application treats it as a no-op refresh).
STATUS_GUARD = """
CREATE FUNCTION reeltrace_check_status_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'pending' THEN
            RAISE EXCEPTION 'Invalid status transition'
                USING ERRCODE = 'RT001', DETAIL = format('a request starts as pending, not %s', NEW.status);
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.status = OLD.status
       OR (OLD.status = 'pending' AND NEW.status = 'generating')
       OR (OLD.status = 'generating' AND NEW.status IN ('completed', 'failed', 'timeout')) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'Invalid status transition'
        USING ERRCODE = 'RT001', DETAIL = format('%s -> %s', OLD.status, NEW.status);
END
$$;
CREATE TRIGGER video_requests_status_guard
    BEFORE INSERT OR UPDATE OF status ON video_requests
    FOR EACH ROW EXECUTE FUNCTION reeltrace_check_status_transition();
"""

# updated_at is the watermark of incremental exports, so every writer must move it,
# psql sessions included. Lease heartbeats alone do not count as a change.
UPDATED_AT = """
CREATE FUNCTION reeltrace_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;
CREATE TRIGGER video_requests_updated_at
    BEFORE UPDATE ON video_requests
    FOR EACH ROW
    WHEN ((to_jsonb(OLD) - '{lease_owner,lease_expires_at,claims,updated_at}'::text[])
          IS DISTINCT FROM (to_jsonb(NEW) - '{lease_owner,lease_expires_at,claims,updated_at}'::text[]))
    EXECUTE FUNCTION reeltrace_set_updated_at();
CREATE TRIGGER request_stages_updated_at
    BEFORE UPDATE ON request_stages
    FOR EACH ROW EXECUTE FUNCTION reeltrace_set_updated_at();
"""

# Deleted requests leave a tombstone, so incremental snapshots learn of deletions.
# The retention job sets reeltrace.delete_reason = 'retention' for its transaction.
TOMBSTONES = """
CREATE FUNCTION reeltrace_record_tombstones() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO request_tombstones (request_id, deleted_at, reason)
    SELECT d.id, clock_timestamp(),
           coalesce(nullif(current_setting('reeltrace.delete_reason', true), ''), 'manual')
    FROM deleted_requests d
    ON CONFLICT (request_id) DO UPDATE
        SET deleted_at = EXCLUDED.deleted_at, reason = EXCLUDED.reason;
    RETURN NULL;
END
$$;
CREATE TRIGGER video_requests_tombstones
    AFTER DELETE ON video_requests
    REFERENCING OLD TABLE AS deleted_requests
    FOR EACH STATEMENT EXECUTE FUNCTION reeltrace_record_tombstones();
"""

# Every event is announced on a channel, so live streams in any API replica learn of
# it at once (LISTEN reeltrace_events). The payload is small; listeners read the row.
NOTIFY = """
CREATE FUNCTION reeltrace_notify_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('reeltrace_events',
                      json_build_object('id', NEW.id, 'request_id', NEW.request_id,
                                        'event_type', NEW.event_type)::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER request_events_notify
    AFTER INSERT ON request_events
    FOR EACH ROW EXECUTE FUNCTION reeltrace_notify_event();
"""

VIEWS = """
CREATE VIEW active_requests_dashboard AS
SELECT r.id,
       r.correlation_id,
       r.pipeline,
       r.user_id,
       r.guild_id,
       r.status,
       r.current_stage,
       s.stage_order AS current_stage_order,
       s.attempts AS current_stage_attempts,
       r.progress_percentage,
       left(r.prompt, 50) AS prompt_preview,
       r.created_at,
       r.started_at,
       extract(epoch FROM (now() - r.created_at))::double precision AS age_seconds,
       r.retry_count,
       r.trace_id,
       r.operation_name
FROM video_requests r
LEFT JOIN request_stages s ON s.request_id = r.id AND s.stage_name = r.current_stage
WHERE r.status IN ('pending', 'generating');

CREATE VIEW request_metrics_summary AS
SELECT date_trunc('hour', created_at) AS hour,
       pipeline,
       count(*) AS total_requests,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'timeout') AS timed_out,
       count(*) FILTER (WHERE status IN ('pending', 'generating')) AS active,
       round(100.0 * count(*) FILTER (WHERE status IN ('failed', 'timeout'))
             / nullif(count(*) FILTER (WHERE status IN ('completed', 'failed', 'timeout')), 0), 2)
           AS failure_rate_pct,
       avg(duration_ms) FILTER (WHERE status = 'completed')::double precision AS avg_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
           FILTER (WHERE status = 'completed') AS p95_duration_ms
FROM video_requests
GROUP BY 1, 2;
"""


def upgrade() -> None:
    bind = op.get_bind()
    for enum in (request_status, stage_status, event_severity):
        enum.create(bind, checkfirst=False)

    op.create_table(
        "video_requests",
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("correlation_id", sa.Text(), nullable=False),
        sa.Column("pipeline", sa.Text(), server_default=sa.text("'veo'"), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("guild_id", sa.Text(), nullable=True),
        sa.Column("channel_id", sa.Text(), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("duration_seconds", sa.SmallInteger(), server_default=sa.text("8"), nullable=False),
        sa.Column("aspect_ratio", sa.Text(), server_default=sa.text("'16:9'"), nullable=False),
        sa.Column("resolution", sa.Text(), server_default=sa.text("'720p'"), nullable=False),
        sa.Column("generate_audio", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("parameters", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("status", request_status, server_default=sa.text("'pending'"), nullable=False),
        sa.Column("current_stage", sa.Text(), nullable=True),
        sa.Column("progress_percentage", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("operation_name", sa.Text(), nullable=True),
        sa.Column("gcs_prefix", sa.Text(), nullable=True),
        sa.Column("video_urls", pg.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_stage", sa.Text(), nullable=True),
        sa.Column("error_details", pg.JSONB(), nullable=True),
        sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("trace_id", sa.Text(), nullable=True),
        sa.Column("traceparent", sa.Text(), nullable=True),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("completed_at", TS, nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", TS, nullable=True),
        sa.Column("claims", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            r"correlation_id ~ '^vvd_[0-9]{13}_[0-9a-f]{8}$'",
            name=op.f("ck_video_requests_correlation_id_format"),
        ),
        sa.CheckConstraint(
            "progress_percentage BETWEEN 0 AND 100", name=op.f("ck_video_requests_progress_range")
        ),
        sa.CheckConstraint("duration_seconds > 0", name=op.f("ck_video_requests_duration_positive")),
        sa.CheckConstraint("retry_count >= 0", name=op.f("ck_video_requests_retry_count_nonnegative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_requests")),
        sa.UniqueConstraint("correlation_id", name=op.f("uq_video_requests_correlation_id")),
    )
    op.create_index(
        "ix_video_requests_user_history",
        "video_requests",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index("ix_video_requests_guild_created", "video_requests", ["guild_id", "created_at"])
    op.create_index(
        "ix_video_requests_created_at",
        "video_requests",
        ["created_at"],
        postgresql_include=["status", "duration_ms"],
    )
    op.create_index("ix_video_requests_updated_at", "video_requests", ["updated_at"])
    op.create_index(
        "ix_video_requests_active",
        "video_requests",
        ["created_at"],
        postgresql_where=sa.text("status IN ('pending', 'generating')"),
    )

    op.create_table(
        "request_stages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("request_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("stage_name", sa.Text(), nullable=False),
        sa.Column("stage_order", sa.SmallInteger(), nullable=False),
        sa.Column("status", stage_status, server_default=sa.text("'pending'"), nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("completed_at", TS, nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_retries", sa.Integer(), server_default=sa.text("3"), nullable=False),
        sa.Column("output", pg.JSONB(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_details", pg.JSONB(), nullable=True),
        sa.Column("updated_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_request_stages_attempts_nonnegative")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["video_requests.id"],
            name=op.f("fk_request_stages_request_id_video_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_stages")),
        sa.UniqueConstraint("request_id", "stage_name", name=op.f("uq_request_stages_request_id_stage_name")),
    )
    op.create_index("ix_request_stages_updated_at", "request_stages", ["updated_at"])

    op.create_table(
        "request_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_uid", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("request_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("severity", event_severity, server_default=sa.text("'info'"), nullable=False),
        sa.Column("stage_name", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("data", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("source_service", sa.Text(), nullable=True),
        sa.Column("source_host", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["video_requests.id"],
            name=op.f("fk_request_events_request_id_video_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_events")),
        sa.UniqueConstraint("event_uid", name=op.f("uq_request_events_event_uid")),
    )
    op.create_index("ix_request_events_request_id_id", "request_events", ["request_id", "id"])
    op.create_index("ix_request_events_created_at", "request_events", ["created_at"])

    op.create_table(
        "request_tombstones",
        sa.Column("request_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("deleted_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_request_tombstones")),
    )
    op.create_index("ix_request_tombstones_deleted_at", "request_tombstones", ["deleted_at"])

    op.create_table(
        "api_keys",
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("scopes", pg.ARRAY(sa.Text()), nullable=False),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.CheckConstraint(
            "scopes <@ ARRAY['submit', 'read', 'admin']::text[] AND cardinality(scopes) > 0",
            name=op.f("ck_api_keys_scopes_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )

    for ddl in (STATUS_GUARD, UPDATED_AT, TOMBSTONES, NOTIFY, VIEWS):
        op.execute(ddl)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS request_metrics_summary")
    op.execute("DROP VIEW IF EXISTS active_requests_dashboard")
    op.drop_table("api_keys")
    op.drop_table("request_events")
    op.drop_table("request_stages")
    op.drop_table("request_tombstones")
    op.drop_table("video_requests")
    for fn in (
        "reeltrace_notify_event",
        "reeltrace_record_tombstones",
        "reeltrace_set_updated_at",
        "reeltrace_check_status_transition",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}()")
    bind = op.get_bind()
    for enum in (event_severity, stage_status, request_status):
        enum.drop(bind, checkfirst=True)
