"""claim_generation: the fence of a request's current claim.

Each claim of a request (and each ending the watchdog makes) bumps
`video_requests.claim_generation` and hands the new value to the run; every write
that run makes (status changes, stage changes, operation records, events, lease
renewals) is conditional on that value in the same statement. A run whose claim was
taken over by another worker (its lease expired during a stall or an outage) has its
writes refused, so it can neither overwrite the new owner nor keep calling out.

Like the lease columns, the generation is bookkeeping, not a change of the request:
the updated_at trigger is recreated to leave it out (updated_at is the export
watermark).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRIGGER = """
DROP TRIGGER video_requests_updated_at ON video_requests;
CREATE TRIGGER video_requests_updated_at
    BEFORE UPDATE ON video_requests
    FOR EACH ROW
    WHEN ((to_jsonb(OLD) - '{{{columns}}}'::text[])
          IS DISTINCT FROM (to_jsonb(NEW) - '{{{columns}}}'::text[]))
    EXECUTE FUNCTION reeltrace_set_updated_at();
"""

_BOOKKEEPING = "lease_owner,lease_expires_at,claims,updated_at"


def upgrade() -> None:
    op.add_column(
        "video_requests",
        sa.Column("claim_generation", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.execute(_TRIGGER.format(columns=_BOOKKEEPING + ",claim_generation"))


def downgrade() -> None:
    op.execute(_TRIGGER.format(columns=_BOOKKEEPING))
    op.drop_column("video_requests", "claim_generation")
