"""The export's watermark columns are stamped by the database, on insert too.

Incremental exports read the rows stamped at or after the previous watermark (less
an overlap margin). Two of those stamps came from the writer's clock: a new request's
and its stages' first `updated_at` (the create function's `at`), and an event's
`created_at`, by which events were read. A write journaled while PostgreSQL was
unreachable and replayed after the margin had passed, or a writer whose clock runs
behind, lands rows stamped before the previous watermark, which no incremental
export ever read.

Now the database stamps them as they are written:

- `updated_at` is set to clock_timestamp() on insert as well, by the same function
  that sets it on update, so every writer (replays, psql) is covered;
- `request_events.recorded_at` (default clock_timestamp(), indexed) is when the row
  was written, and the export reads events by it. Existing events get their
  `created_at`, so the next incremental export does not re-read them all.

`created_at` keeps the writer's time: it is when the thing happened, and what the
analytics report.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)

INSERT_TRIGGERS = """
CREATE TRIGGER video_requests_inserted_at
    BEFORE INSERT ON video_requests
    FOR EACH ROW EXECUTE FUNCTION reeltrace_set_updated_at();
CREATE TRIGGER request_stages_inserted_at
    BEFORE INSERT ON request_stages
    FOR EACH ROW EXECUTE FUNCTION reeltrace_set_updated_at();
"""

DROP_INSERT_TRIGGERS = """
DROP TRIGGER request_stages_inserted_at ON request_stages;
DROP TRIGGER video_requests_inserted_at ON video_requests;
"""


def upgrade() -> None:
    op.add_column("request_events", sa.Column("recorded_at", TS, nullable=True))
    op.execute("UPDATE request_events SET recorded_at = created_at")
    op.alter_column(
        "request_events", "recorded_at", nullable=False, server_default=sa.text("clock_timestamp()")
    )
    op.create_index("ix_request_events_recorded_at", "request_events", ["recorded_at"])
    op.execute(INSERT_TRIGGERS)


def downgrade() -> None:
    op.execute(DROP_INSERT_TRIGGERS)
    op.drop_index("ix_request_events_recorded_at", table_name="request_events")
    op.drop_column("request_events", "recorded_at")
