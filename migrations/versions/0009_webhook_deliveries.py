"""webhook_deliveries: one durable row per callback, and database-filled status times.

A callback is a delivery of its own, apart from the request's run: its row holds the
receiver's URL, the signed body's payload, the attempts made, the last answer (code,
latency, error), when the next attempt is due and the outcome. Any worker's sweep
claims due deliveries with `FOR UPDATE SKIP LOCKED`, so deliveries survive restarts
and one receiver's failures only push back its own rows. `claim_token` fences an
attempt: a sweep whose claim expired (and was taken over) cannot record over the new
owner's attempt.

The second half makes a legal status change made by hand complete: the state-machine
guard already refuses illegal ones, and `reeltrace_fill_status_times` now fills
`started_at` (entering `generating`), `completed_at` and `duration_ms` (entering a
terminal status) when the writer left them empty, as the tracker's own writes do. It
is a trigger of its own (named to fire after the guard), so the guard's body is not
touched.

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)

STATUS_TIMES = """
CREATE FUNCTION reeltrace_fill_status_times() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    IF NEW.status = 'generating' THEN
        NEW.started_at := coalesce(NEW.started_at, clock_timestamp());
    ELSIF NEW.status IN ('completed', 'failed', 'timeout') THEN
        NEW.completed_at := coalesce(NEW.completed_at, clock_timestamp());
        NEW.duration_ms := coalesce(
            NEW.duration_ms,
            floor(extract(epoch FROM (NEW.completed_at - coalesce(NEW.started_at, NEW.completed_at)))
                  * 1000)::bigint);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER video_requests_status_times
    BEFORE UPDATE OF status ON video_requests
    FOR EACH ROW EXECUTE FUNCTION reeltrace_fill_status_times();
"""

DROP_STATUS_TIMES = """
DROP TRIGGER video_requests_status_times ON video_requests;
DROP FUNCTION reeltrace_fill_status_times();
"""


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("request_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("outcome", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_latency_ms", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", TS, nullable=True),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("deliver_until", TS, nullable=False),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("claim_token", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('pending', 'delivered', 'failed')", name=op.f("ck_webhook_deliveries_outcome_known")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["video_requests.id"],
            name=op.f("fk_webhook_deliveries_request_id_video_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("request_id", "event", name=op.f("uq_webhook_deliveries_request_id_event")),
    )
    # The sweep's scan: only pending rows, by when they are due.
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("outcome = 'pending'"),
    )
    op.execute(STATUS_TIMES)


def downgrade() -> None:
    op.execute(DROP_STATUS_TIMES)
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
