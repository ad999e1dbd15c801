"""Rollups of finished requests: per-minute and per-hour counts, sums and duration sketches.

The dashboard, the hourly metrics and the Grafana summary view read these instead of
scanning the day's rows, so their cost no longer grows with the day's traffic.

- `request_rollups`: per bucket (`bucket_seconds` 60 or 3600, `bucket_start` from the
  request's `created_at`), pipeline and terminal status: `requests`, `timed_requests`
  (those with a duration) and `duration_sum_ms`.
- `request_rollup_sketches`: the same buckets, one row per DDSketch index of the
  duration: `requests`. Index i holds durations in (g^(i-1), g^i] ms with
  g = 1.01 / 0.99, so a quantile read from it is within 1 % of the exact value;
  zero (and negative) durations share index -32768.
- `stage_rollups`: per bucket, pipeline and stage name, the completed stages' count
  and duration sum, as they stood when their request ended.

Two resolutions: whole hours keep long windows cheap, minutes keep a window's edges
exact (the rest of an edge, under a minute, is read from the rows).

A trigger on `video_requests` keeps them in step with every writer (the tracker, the
journal replay, the watchdog, psql): a row that becomes terminal adds itself, and a
change to a terminal row's status, pipeline, created_at or duration_ms takes the old
values away and adds the new ones. A request without a duration is counted but stays
out of the sums and the sketch, as it stays out of the exact aggregates. Deleting a
request does not take it away: rollups outlive the rows (retention prunes only the
minute-level ones), so dashboards about the past stay. `reeltrace rollups rebuild`
recomputes them from the rows.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
request_status = pg.ENUM(name="request_status", create_type=False)

# The sketch's mapping lives in the database alone, so the trigger, the rebuild and the
# readers (edges read from the rows) can never disagree about an index.
SKETCH_FUNCTIONS = """
CREATE FUNCTION reeltrace_sketch_index(duration_ms bigint) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN duration_ms IS NULL THEN NULL
                WHEN duration_ms <= 0 THEN -32768
                ELSE ceil(ln(duration_ms::double precision) / ln(1.01 / 0.99))::smallint END
$$;

CREATE FUNCTION reeltrace_sketch_value(sketch_index smallint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN sketch_index = -32768 THEN 0::double precision
                ELSE 2 * power(1.01 / 0.99, sketch_index)::double precision / (1.01 / 0.99 + 1) END
$$;

-- Quantiles as percentile_cont defines them (linear between the two ranks around
-- q * (n - 1)), each rank's value read from its sketch bucket: both ends are within
-- 1 %, so the interpolation is too. `indexes` ascending, `counts` aligned.
CREATE FUNCTION reeltrace_sketch_quantiles(indexes smallint[], counts bigint[], qs double precision[])
RETURNS double precision[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    total bigint := 0;
    result double precision[] := '{}';
    q double precision;
    rank double precision;
    lo bigint;
    hi bigint;
    cum bigint;
    v_lo double precision;
    v_hi double precision;
BEGIN
    IF indexes IS NULL THEN
        RETURN NULL;
    END IF;
    FOR i IN 1 .. coalesce(array_length(counts, 1), 0) LOOP
        total := total + counts[i];
    END LOOP;
    IF total <= 0 THEN
        RETURN NULL;
    END IF;
    FOREACH q IN ARRAY qs LOOP
        rank := q * (total - 1);
        lo := floor(rank);
        hi := ceil(rank);
        cum := 0;
        v_lo := NULL;
        v_hi := NULL;
        FOR i IN 1 .. array_length(indexes, 1) LOOP
            cum := cum + counts[i];
            IF v_lo IS NULL AND cum > lo THEN
                v_lo := reeltrace_sketch_value(indexes[i]);
            END IF;
            IF cum > hi THEN
                v_hi := reeltrace_sketch_value(indexes[i]);
                EXIT;
            END IF;
        END LOOP;
        result := result || (v_lo + (rank - lo) * (v_hi - v_lo));
    END LOOP;
    RETURN result;
END
$$;
"""

TRIGGER = """
CREATE FUNCTION reeltrace_rollup_apply(r video_requests, sign integer) RETURNS void
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

CREATE FUNCTION reeltrace_maintain_rollups() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('completed', 'failed', 'timeout') THEN
        PERFORM reeltrace_rollup_apply(OLD, -1);
    END IF;
    IF NEW.status IN ('completed', 'failed', 'timeout') THEN
        PERFORM reeltrace_rollup_apply(NEW, 1);
    END IF;
    RETURN NULL;
END
$$;

-- No column list: a BEFORE trigger may fill duration_ms on a statement that never
-- named it, and the WHEN clause is what keeps every other update free.
CREATE TRIGGER video_requests_rollups
    AFTER UPDATE ON video_requests
    FOR EACH ROW
    WHEN ((OLD.status IN ('completed', 'failed', 'timeout') OR NEW.status IN ('completed', 'failed', 'timeout'))
          AND (OLD.status, OLD.pipeline, OLD.created_at, OLD.duration_ms)
              IS DISTINCT FROM (NEW.status, NEW.pipeline, NEW.created_at, NEW.duration_ms))
    EXECUTE FUNCTION reeltrace_maintain_rollups();
"""

DROP_TRIGGER = """
DROP TRIGGER video_requests_rollups ON video_requests;
DROP FUNCTION reeltrace_maintain_rollups();
DROP FUNCTION reeltrace_rollup_apply(video_requests, integer);
DROP FUNCTION reeltrace_sketch_quantiles(smallint[], bigint[], double precision[]);
DROP FUNCTION reeltrace_sketch_value(smallint);
DROP FUNCTION reeltrace_sketch_index(bigint);
"""

# The rows already there, as `reeltrace rollups rebuild` would count them.
BACKFILL = """
INSERT INTO request_rollups (bucket_seconds, bucket_start, pipeline, status, requests, timed_requests,
                             duration_sum_ms)
SELECT w.s, date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
       r.pipeline, r.status, count(*), count(r.duration_ms), coalesce(sum(r.duration_ms), 0)
FROM video_requests r CROSS JOIN (VALUES (60), (3600)) AS w(s)
WHERE r.status IN ('completed', 'failed', 'timeout')
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4;
INSERT INTO request_rollup_sketches (bucket_seconds, status, bucket_start, pipeline, sketch_index, requests)
SELECT w.s, r.status, date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
       r.pipeline, reeltrace_sketch_index(r.duration_ms), count(*)
FROM video_requests r CROSS JOIN (VALUES (60), (3600)) AS w(s)
WHERE r.status IN ('completed', 'failed', 'timeout') AND r.duration_ms IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5;
INSERT INTO stage_rollups (bucket_seconds, bucket_start, pipeline, stage_name, stages, duration_sum_ms)
SELECT w.s, date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
       r.pipeline, s.stage_name, count(*), sum(s.duration_ms)
FROM video_requests r
JOIN request_stages s ON s.request_id = r.id
CROSS JOIN (VALUES (60), (3600)) AS w(s)
WHERE r.status IN ('completed', 'failed', 'timeout') AND s.status = 'completed' AND s.duration_ms IS NOT NULL
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4;
"""

# The summary view Grafana may read, now from the hourly rollups (P95 within 1 %) and
# the open requests' partial index, instead of every row of the table.
SUMMARY_VIEW = """
CREATE OR REPLACE VIEW request_metrics_summary AS
WITH finished AS (
    SELECT bucket_start AS hour, pipeline,
           sum(requests) AS total_requests,
           sum(requests) FILTER (WHERE status = 'completed') AS completed,
           sum(requests) FILTER (WHERE status = 'failed') AS failed,
           sum(requests) FILTER (WHERE status = 'timeout') AS timed_out,
           sum(duration_sum_ms) FILTER (WHERE status = 'completed') AS completed_ms,
           sum(timed_requests) FILTER (WHERE status = 'completed') AS completed_timed
    FROM request_rollups
    WHERE bucket_seconds = 3600
    GROUP BY 1, 2
), open AS (
    SELECT date_bin(interval '1 hour', created_at, TIMESTAMPTZ '2000-01-01 00:00+00') AS hour, pipeline,
           count(*) AS active
    FROM video_requests
    WHERE status IN ('pending', 'generating')
    GROUP BY 1, 2
), sketch AS (
    SELECT hour, pipeline,
           reeltrace_sketch_quantiles(array_agg(sketch_index ORDER BY sketch_index),
                                      array_agg(n ORDER BY sketch_index), ARRAY[0.95])
               AS quantiles
    FROM (SELECT bucket_start AS hour, pipeline, sketch_index, sum(requests)::bigint AS n
          FROM request_rollup_sketches
          WHERE bucket_seconds = 3600 AND status = 'completed'
          GROUP BY 1, 2, 3) AS per_index
    GROUP BY 1, 2
)
SELECT hour,
       pipeline,
       (coalesce(f.total_requests, 0) + coalesce(o.active, 0))::bigint AS total_requests,
       coalesce(f.completed, 0)::bigint AS completed,
       coalesce(f.failed, 0)::bigint AS failed,
       coalesce(f.timed_out, 0)::bigint AS timed_out,
       coalesce(o.active, 0)::bigint AS active,
       round(100.0 * (coalesce(f.failed, 0) + coalesce(f.timed_out, 0)) / nullif(f.total_requests, 0), 2)
           AS failure_rate_pct,
       (f.completed_ms::double precision / nullif(f.completed_timed, 0)) AS avg_duration_ms,
       s.quantiles[1] AS p95_duration_ms
FROM finished f
FULL JOIN open o USING (hour, pipeline)
LEFT JOIN sketch s USING (hour, pipeline);
"""

OLD_SUMMARY_VIEW = """
DROP VIEW request_metrics_summary;
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


def _bucket_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("bucket_seconds", sa.Integer(), nullable=False),
        sa.Column("bucket_start", TS, nullable=False),
        sa.Column("pipeline", sa.Text(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "request_rollups",
        *_bucket_columns(),
        sa.Column("status", request_status, nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("timed_requests", sa.BigInteger(), nullable=False),
        sa.Column("duration_sum_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "bucket_seconds IN (60, 3600)", name=op.f("ck_request_rollups_bucket_seconds_known")
        ),
        sa.PrimaryKeyConstraint(
            "bucket_seconds", "bucket_start", "pipeline", "status", name=op.f("pk_request_rollups")
        ),
    )
    # Status leads the sketch's key: readers want the completed durations of a time range.
    op.create_table(
        "request_rollup_sketches",
        *_bucket_columns(),
        sa.Column("status", request_status, nullable=False),
        sa.Column("sketch_index", sa.SmallInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "bucket_seconds IN (60, 3600)", name=op.f("ck_request_rollup_sketches_bucket_seconds_known")
        ),
    )
    # The count rides in the key's index: readers of a time range scan the index alone.
    op.execute(
        "ALTER TABLE request_rollup_sketches ADD CONSTRAINT pk_request_rollup_sketches"
        " PRIMARY KEY (bucket_seconds, status, bucket_start, pipeline, sketch_index) INCLUDE (requests)"
    )
    op.create_table(
        "stage_rollups",
        *_bucket_columns(),
        sa.Column("stage_name", sa.Text(), nullable=False),
        sa.Column("stages", sa.BigInteger(), nullable=False),
        sa.Column("duration_sum_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "bucket_seconds IN (60, 3600)", name=op.f("ck_stage_rollups_bucket_seconds_known")
        ),
        sa.PrimaryKeyConstraint(
            "bucket_seconds", "bucket_start", "pipeline", "stage_name", name=op.f("pk_stage_rollups")
        ),
    )
    op.execute(SKETCH_FUNCTIONS)
    op.execute(TRIGGER)
    op.execute(BACKFILL)
    op.execute(SUMMARY_VIEW)


def downgrade() -> None:
    op.execute(OLD_SUMMARY_VIEW)
    op.execute(DROP_TRIGGER)
    op.drop_table("stage_rollups")
    op.drop_table("request_rollup_sketches")
    op.drop_table("request_rollups")
