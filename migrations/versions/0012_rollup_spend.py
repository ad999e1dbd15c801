"""Spend in the request rollups: `request_rollups.cost_usd_sum`.

Each bucket (minute or hour of created_at, pipeline, terminal status) gains the sum
of its finished requests' `cost_usd` (numeric USD, exact). A request whose cost is
NULL (billed with a model the price table does not price) adds nothing, as it adds
nothing to SUM(cost_usd) over the rows.

The rollup trigger is revision 0008's, extended: the terminal row's cost is added
and taken away with the rest of it, and a change to a terminal row's `cost_usd` now
moves the sums too (the WHEN clause names it). The zero-cost trigger of revision
0010 (`video_requests_zero_cost`) is a BEFORE trigger and this one an AFTER trigger,
so the rollup always sees the final cost of a request that ended with nothing billed.

Existing buckets are backfilled from the rows still there; buckets whose rows
retention already deleted keep a sum of 0 (their cost is gone with the rows).
`reeltrace rollups rebuild` recomputes the sum with the rest.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Revision 0008's function, with the cost added and taken away like the duration.
APPLY_FUNCTION = """
CREATE OR REPLACE FUNCTION reeltrace_rollup_apply(r video_requests, sign integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO request_rollups AS t (bucket_seconds, bucket_start, pipeline, status,
                                      requests, timed_requests, duration_sum_ms, cost_usd_sum)
    SELECT w.s, date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
           r.pipeline, r.status, sign, CASE WHEN r.duration_ms IS NULL THEN 0 ELSE sign END,
           sign * coalesce(r.duration_ms, 0), sign * coalesce(r.cost_usd, 0)
    FROM (VALUES (60), (3600)) AS w(s)
    ON CONFLICT (bucket_seconds, bucket_start, pipeline, status) DO UPDATE
        SET requests = t.requests + EXCLUDED.requests,
            timed_requests = t.timed_requests + EXCLUDED.timed_requests,
            duration_sum_ms = t.duration_sum_ms + EXCLUDED.duration_sum_ms,
            cost_usd_sum = t.cost_usd_sum + EXCLUDED.cost_usd_sum;
    IF r.duration_ms IS NOT NULL THEN
        INSERT INTO request_rollup_sketches AS t (bucket_seconds, status, bucket_start, pipeline,
                                                  sketch_index, requests)
        SELECT w.s, r.status,
               date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
               r.pipeline, reeltrace_sketch_index(r.duration_ms), sign
        FROM (VALUES (60), (3600)) AS w(s)
        ON CONFLICT (bucket_seconds, status, bucket_start, pipeline, sketch_index) DO UPDATE
            SET requests = t.requests + EXCLUDED.requests;
    END IF;
    INSERT INTO stage_rollups AS t (bucket_seconds, bucket_start, pipeline, stage_name, stages, duration_sum_ms)
    SELECT w.s, date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
           r.pipeline, s.stage_name, sign * count(*), sign * sum(s.duration_ms)
    FROM request_stages s CROSS JOIN (VALUES (60), (3600)) AS w(s)
    WHERE s.request_id = r.id AND s.status = 'completed' AND s.duration_ms IS NOT NULL
    GROUP BY w.s, s.stage_name
    ON CONFLICT (bucket_seconds, bucket_start, pipeline, stage_name) DO UPDATE
        SET stages = t.stages + EXCLUDED.stages,
            duration_sum_ms = t.duration_sum_ms + EXCLUDED.duration_sum_ms;
END
$$;
"""

# Revision 0008's function, as it was: what the downgrade puts back.
PREVIOUS_APPLY_FUNCTION = """
CREATE OR REPLACE FUNCTION reeltrace_rollup_apply(r video_requests, sign integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO request_rollups AS t (bucket_seconds, bucket_start, pipeline, status,
                                      requests, timed_requests, duration_sum_ms)
    SELECT w.s, date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
           r.pipeline, r.status, sign, CASE WHEN r.duration_ms IS NULL THEN 0 ELSE sign END,
           sign * coalesce(r.duration_ms, 0)
    FROM (VALUES (60), (3600)) AS w(s)
    ON CONFLICT (bucket_seconds, bucket_start, pipeline, status) DO UPDATE
        SET requests = t.requests + EXCLUDED.requests,
            timed_requests = t.timed_requests + EXCLUDED.timed_requests,
            duration_sum_ms = t.duration_sum_ms + EXCLUDED.duration_sum_ms;
    IF r.duration_ms IS NOT NULL THEN
        INSERT INTO request_rollup_sketches AS t (bucket_seconds, status, bucket_start, pipeline,
                                                  sketch_index, requests)
        SELECT w.s, r.status,
               date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
               r.pipeline, reeltrace_sketch_index(r.duration_ms), sign
        FROM (VALUES (60), (3600)) AS w(s)
        ON CONFLICT (bucket_seconds, status, bucket_start, pipeline, sketch_index) DO UPDATE
            SET requests = t.requests + EXCLUDED.requests;
    END IF;
    INSERT INTO stage_rollups AS t (bucket_seconds, bucket_start, pipeline, stage_name, stages, duration_sum_ms)
    SELECT w.s, date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
           r.pipeline, s.stage_name, sign * count(*), sign * sum(s.duration_ms)
    FROM request_stages s CROSS JOIN (VALUES (60), (3600)) AS w(s)
    WHERE s.request_id = r.id AND s.status = 'completed' AND s.duration_ms IS NOT NULL
    GROUP BY w.s, s.stage_name
    ON CONFLICT (bucket_seconds, bucket_start, pipeline, stage_name) DO UPDATE
        SET stages = t.stages + EXCLUDED.stages,
            duration_sum_ms = t.duration_sum_ms + EXCLUDED.duration_sum_ms;
END
$$;
"""

# Revision 0008's trigger, its WHEN clause naming cost_usd too. An AFTER trigger: it
# runs once every BEFORE trigger (the zero cost of 0010, the duration) has set NEW.
TRIGGER = """
DROP TRIGGER video_requests_rollups ON video_requests;
CREATE TRIGGER video_requests_rollups
    AFTER UPDATE ON video_requests
    FOR EACH ROW
    WHEN ((OLD.status IN ('completed', 'failed', 'timeout') OR NEW.status IN ('completed', 'failed', 'timeout'))
          AND (OLD.status, OLD.pipeline, OLD.created_at, OLD.duration_ms, OLD.cost_usd)
              IS DISTINCT FROM (NEW.status, NEW.pipeline, NEW.created_at, NEW.duration_ms, NEW.cost_usd))
    EXECUTE FUNCTION reeltrace_maintain_rollups();
"""

PREVIOUS_TRIGGER = """
DROP TRIGGER video_requests_rollups ON video_requests;
CREATE TRIGGER video_requests_rollups
    AFTER UPDATE ON video_requests
    FOR EACH ROW
    WHEN ((OLD.status IN ('completed', 'failed', 'timeout') OR NEW.status IN ('completed', 'failed', 'timeout'))
          AND (OLD.status, OLD.pipeline, OLD.created_at, OLD.duration_ms)
              IS DISTINCT FROM (NEW.status, NEW.pipeline, NEW.created_at, NEW.duration_ms))
    EXECUTE FUNCTION reeltrace_maintain_rollups();
"""

# The rows still there, as `reeltrace rollups rebuild` would sum them.
BACKFILL = """
UPDATE request_rollups t
SET cost_usd_sum = c.cost
FROM (
    SELECT w.s, date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00') AS b,
           r.pipeline, r.status, sum(r.cost_usd) AS cost
    FROM video_requests r CROSS JOIN (VALUES (60), (3600)) AS w(s)
    WHERE r.status IN ('completed', 'failed', 'timeout') AND r.cost_usd IS NOT NULL
    GROUP BY 1, 2, 3, 4
) AS c
WHERE t.bucket_seconds = c.s AND t.bucket_start = c.b AND t.pipeline = c.pipeline AND t.status = c.status;
"""


def upgrade() -> None:
    op.add_column(
        "request_rollups",
        sa.Column("cost_usd_sum", sa.Numeric(18, 6), nullable=False, server_default=sa.text("0")),
    )
    op.execute(APPLY_FUNCTION)
    op.execute(TRIGGER)
    op.execute(BACKFILL)


def downgrade() -> None:
    op.execute(PREVIOUS_TRIGGER)
    op.execute(PREVIOUS_APPLY_FUNCTION)
    op.drop_column("request_rollups", "cost_usd_sum")
