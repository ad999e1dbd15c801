"""circuit_breaker_states: each process's breakers, published for the API to read.

Breakers live in the worker processes that call the dependencies; the API (maybe
another process, another machine) reads their latest published state here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "circuit_breaker_states",
        sa.Column("process_id", sa.Text(), nullable=False),
        sa.Column("dependency", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("failure_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("success_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("call_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("rejected_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("failure_threshold", sa.Integer(), nullable=False),
        sa.Column("reset_seconds", sa.Float(), nullable=False),
        sa.Column("last_failure_at", TS, nullable=True),
        sa.Column("opened_at", TS, nullable=True),
        sa.Column("updated_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "state IN ('closed', 'open', 'half_open')", name=op.f("ck_circuit_breaker_states_state_known")
        ),
        sa.PrimaryKeyConstraint("process_id", "dependency", name=op.f("pk_circuit_breaker_states")),
    )
    op.create_index("ix_circuit_breaker_states_updated_at", "circuit_breaker_states", ["updated_at"])


def downgrade() -> None:
    op.drop_table("circuit_breaker_states")
