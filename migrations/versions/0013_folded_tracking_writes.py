"""Tracking writes that cost PostgreSQL less, and the schema's functions in one file.

A tracking write now inserts several events in one statement (a run folds its
consecutive writes: `service.tracking.write_values.Step`). Two things ran per event row and
doubled the statements PostgreSQL ran for each write:

- the notification trigger on `request_events` was a row trigger (one `pg_notify`
  per event); it is now a statement trigger, one notification per write;
- the foreign key from `request_events` to `video_requests` checked each inserted
  event. Events are written only in the statement that locks their request's row,
  so the key checked what the write already guarantees; it is dropped, and a
  statement trigger on `video_requests` deletes a request's events with it, as the
  key's ON DELETE CASCADE did (retention).

From this revision on, every function and trigger lives in `migrations/functions/`
(see the header of `0013.sql`); this revision runs that file.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions" / "0013.sql"

_PREVIOUS = """
DROP TRIGGER IF EXISTS video_requests_delete_events ON video_requests;
DROP FUNCTION IF EXISTS reeltrace_delete_request_events();
DROP TRIGGER IF EXISTS request_events_notify ON request_events;
DROP FUNCTION IF EXISTS reeltrace_notify_events();
CREATE OR REPLACE FUNCTION reeltrace_notify_event() RETURNS trigger
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
DELETE FROM request_events e WHERE NOT EXISTS (SELECT 1 FROM video_requests v WHERE v.id = e.request_id);
ALTER TABLE request_events ADD CONSTRAINT fk_request_events_request_id_video_requests
    FOREIGN KEY (request_id) REFERENCES video_requests (id) ON DELETE CASCADE;
"""


def _run_script(script: str) -> None:
    # The driver's own execute: the file is SQL as PostgreSQL reads it, with no
    # bind-parameter syntax for SQLAlchemy or psycopg to interpret.
    op.get_bind().connection.driver_connection.execute(script)  # type: ignore[union-attr]


def upgrade() -> None:
    op.drop_constraint("fk_request_events_request_id_video_requests", "request_events", type_="foreignkey")
    _run_script(FUNCTIONS.read_text(encoding="utf-8"))
    _run_script("DROP FUNCTION IF EXISTS reeltrace_notify_event();")


def downgrade() -> None:
    _run_script(_PREVIOUS)
