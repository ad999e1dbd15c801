"""The SQL of the rollup reads (dashboard, hourly metrics) and of the rollup rebuild.

A window [since, until) is read in signed pieces (`rollups.Window`): whole hours
from the hourly rollups, whole minutes at the edges from the minute rollups, and the
parts under a minute from the rows themselves, so every count is exact. Open requests (pending, generating)
are counted from the rows through the partial index that holds only them.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00+00'"
TERMINAL = "('completed', 'failed', 'timeout')"
_PIPELINE = "(CAST(:pipeline AS text) IS NULL OR {col} = CAST(:pipeline AS text))"


def _hour(column: str) -> str:
    return f"date_bin(interval '1 hour', {column}, {ORIGIN})"


def _pieces(
    rollup: str,
    rollup_cols: str,
    row_cols: str,
    row_where: str,
    *,
    rollup_where: str = "true",
    rows_from: str = "video_requests v",
) -> str:
    """UNION ALL of the window's pieces: hourly and minute rollups, then the rows at the
    edges. `{sign}` in the column lists is the piece's sign (the start may be taken away)."""
    pipeline_r = _PIPELINE.format(col="pipeline")
    pipeline_v = _PIPELINE.format(col="v.pipeline")
    lead = "CAST(:lead_sign AS integer)"
    return f"""
    SELECT {rollup_cols.format(sign="1")} FROM {rollup}
     WHERE bucket_seconds = 3600 AND bucket_start >= :h1 AND bucket_start < :h2
       AND {rollup_where} AND {pipeline_r}
    UNION ALL
    SELECT {rollup_cols.format(sign=lead)} FROM {rollup}
     WHERE bucket_seconds = 60 AND bucket_start >= :lead_m1 AND bucket_start < :lead_m2
       AND {rollup_where} AND {pipeline_r}
    UNION ALL
    SELECT {rollup_cols.format(sign="1")} FROM {rollup}
     WHERE bucket_seconds = 60 AND bucket_start >= :h2 AND bucket_start < :m2
       AND {rollup_where} AND {pipeline_r}
    UNION ALL
    SELECT {row_cols.format(sign=lead)} FROM {rows_from}
     WHERE v.created_at >= :lead_r1 AND v.created_at < :lead_r2 AND {row_where} AND {pipeline_v}
    UNION ALL
    SELECT {row_cols.format(sign="1")} FROM {rows_from}
     WHERE v.created_at >= :m2 AND v.created_at < :until AND {row_where} AND {pipeline_v}
"""


def _finished(group: str, group_rows: str) -> str:
    return _pieces(
        "request_rollups",
        f"{group} status, {{sign}} * requests AS n, {{sign}} * timed_requests AS timed,"
        " {sign} * duration_sum_ms AS ms, {sign} * cost_usd_sum AS cost",
        f"{group_rows} v.status, {{sign}}, {{sign}} * (v.duration_ms IS NOT NULL)::int,"
        " {sign} * coalesce(v.duration_ms, 0), {sign} * coalesce(v.cost_usd, 0)",
        f"v.status IN {TERMINAL}",
    )


def _sketch(group: str, group_rows: str) -> str:
    return _pieces(
        "request_rollup_sketches",
        f"{group} sketch_index, {{sign}} * requests AS n",
        f"{group_rows} reeltrace_sketch_index(v.duration_ms), {{sign}}",
        "v.status = 'completed' AND v.duration_ms IS NOT NULL",
        rollup_where="status = 'completed'",
    )


_OPEN_ROWS = f"""
    SELECT {{cols}} FROM video_requests v
    WHERE v.status IN ('pending', 'generating') AND v.created_at >= :since AND v.created_at < :until
      AND {_PIPELINE.format(col="v.pipeline")}
"""

DASHBOARD: TextClause = text(
    f"""
WITH finished AS (
    SELECT status, sum(n) AS n, sum(timed) AS timed, sum(ms) AS ms, sum(cost) AS cost
    FROM ({_finished("", "")}) AS parts
    GROUP BY status
), sketch AS (
    SELECT sketch_index, sum(n)::bigint AS n
    FROM ({_sketch("", "")}) AS parts
    GROUP BY sketch_index
), open AS ({_OPEN_ROWS.format(cols="v.status, v.cost_usd")})
SELECT CAST(:since AS timestamptz) AS since,
       coalesce((SELECT n FROM finished WHERE status = 'completed'), 0) AS completed,
       coalesce((SELECT n FROM finished WHERE status = 'failed'), 0) AS failed,
       coalesce((SELECT n FROM finished WHERE status = 'timeout'), 0) AS timeout,
       (SELECT count(*) FROM open WHERE status = 'pending') AS pending,
       (SELECT count(*) FROM open WHERE status = 'generating') AS generating,
       (SELECT ms::double precision / nullif(timed, 0) FROM finished WHERE status = 'completed') AS avg_ms,
       (SELECT reeltrace_sketch_quantiles(array_agg(sketch_index ORDER BY sketch_index),
                                          array_agg(n ORDER BY sketch_index), ARRAY[0.5, 0.95, 0.99])
        FROM sketch) AS percentiles,
       (SELECT count(*) FROM video_requests WHERE status IN ('pending', 'generating')) AS active,
       (SELECT coalesce(sum(cost), 0) FROM finished)
           + (SELECT coalesce(sum(cost_usd), 0) FROM open) AS spend_usd
"""
)

# What the requests created in a window cost: finished ones from the rollups (and the
# rows at the edges), open ones (billed attempts so far) from the rows. A NULL cost
# (an unpriced model) adds nothing, as in SUM(cost_usd) over the rows.
SPEND: TextClause = text(
    f"""
SELECT coalesce(sum(cost), 0) AS spend_usd
FROM (
    {
        _pieces(
            "request_rollups",
            "{sign} * cost_usd_sum AS cost",
            "{sign} * coalesce(v.cost_usd, 0)",
            f"v.status IN {TERMINAL}",
        )
    }
    UNION ALL
    {_OPEN_ROWS.format(cols="coalesce(v.cost_usd, 0)")}
) AS parts
"""
)

HOURLY: TextClause = text(
    f"""
WITH finished AS (
    SELECT hour, sum(n) FILTER (WHERE status = 'completed') AS completed,
           sum(n) FILTER (WHERE status = 'failed') AS failed,
           sum(n) FILTER (WHERE status = 'timeout') AS timed_out,
           sum(ms) FILTER (WHERE status = 'completed') AS completed_ms,
           sum(timed) FILTER (WHERE status = 'completed') AS completed_timed
    FROM ({_finished(_hour("bucket_start") + " AS hour,", _hour("v.created_at") + ",")}) AS parts
    GROUP BY hour
), open AS (
    SELECT {_hour("v.created_at")} AS hour, count(*) AS active
    FROM video_requests v
    WHERE v.status IN ('pending', 'generating') AND v.created_at >= :since AND v.created_at < :until
      AND {_PIPELINE.format(col="v.pipeline")}
    GROUP BY 1
), sketch AS (
    SELECT hour, reeltrace_sketch_quantiles(array_agg(sketch_index ORDER BY sketch_index),
                                            array_agg(n ORDER BY sketch_index), ARRAY[0.5, 0.95]) AS q
    FROM (SELECT hour, sketch_index, sum(n)::bigint AS n
          FROM ({_sketch(_hour("bucket_start") + " AS hour,", _hour("v.created_at") + ",")}) AS parts
          GROUP BY 1, 2) AS per_index
    GROUP BY hour
)
SELECT hour,
       (coalesce(f.completed, 0) + coalesce(f.failed, 0) + coalesce(f.timed_out, 0)
        + coalesce(o.active, 0))::bigint AS total_requests,
       coalesce(f.completed, 0)::bigint AS completed,
       coalesce(f.failed, 0)::bigint AS failed,
       coalesce(f.timed_out, 0)::bigint AS timed_out,
       coalesce(o.active, 0)::bigint AS active,
       round(100.0 * (coalesce(f.failed, 0) + coalesce(f.timed_out, 0))
             / nullif(coalesce(f.completed, 0) + coalesce(f.failed, 0) + coalesce(f.timed_out, 0), 0),
             2)::double precision AS failure_rate_pct,
       f.completed_ms::double precision / nullif(f.completed_timed, 0) AS avg_duration_ms,
       s.q[2] AS p95_duration_ms,
       s.q[1] AS p50_duration_ms
FROM finished f
FULL JOIN open o USING (hour)
LEFT JOIN sketch s USING (hour)
WHERE coalesce(f.completed, 0) + coalesce(f.failed, 0) + coalesce(f.timed_out, 0) + coalesce(o.active, 0) > 0
ORDER BY hour
"""
)

_WITH_STAGES = (
    "video_requests v JOIN request_stages s"
    " ON s.request_id = v.id AND s.status = 'completed' AND s.duration_ms IS NOT NULL"
)

# Stages of finished requests from the stage rollups and, at the edges, from the
# rows; stages of open requests from the rows (they reach the rollups when their
# request ends).
HOURLY_STAGES: TextClause = text(
    f"""
SELECT hour, stage_name, sum(ms)::double precision / sum(n) AS avg_duration_ms
FROM (
    {
        _pieces(
            "stage_rollups",
            _hour("bucket_start")
            + " AS hour, stage_name, {sign} * stages AS n, {sign} * duration_sum_ms AS ms",
            _hour("v.created_at") + ", s.stage_name, {sign}, {sign} * s.duration_ms",
            f"v.status IN {TERMINAL}",
            rows_from=_WITH_STAGES,
        )
    }
    UNION ALL
    SELECT {_hour("v.created_at")}, s.stage_name, 1, s.duration_ms
    FROM {_WITH_STAGES}
    WHERE v.status IN ('pending', 'generating') AND v.created_at >= :since AND v.created_at < :until
      AND {_PIPELINE.format(col="v.pipeline")}
) AS parts
GROUP BY 1, 2
HAVING sum(n) > 0
"""
)

# --- rebuild ------------------------------------------------------------------------
# Inserted in key order, so a time range's rows sit on few pages for the readers.
# The trigger's writers wait for the rebuild's lock, so a request that ends meanwhile
# is counted once: by the rebuild if it committed first, by its trigger otherwise.
REBUILD_LOCK: TextClause = text(
    "LOCK TABLE request_rollups, request_rollup_sketches, stage_rollups IN EXCLUSIVE MODE"
)
REBUILD_DELETE = tuple(
    text(f"DELETE FROM {table} WHERE bucket_start >= :since")
    for table in ("request_rollups", "request_rollup_sketches", "stage_rollups")
)
_BUCKET = f"date_bin(make_interval(secs => w.s), r.created_at, {ORIGIN})"
_FROM = f"""
FROM video_requests r CROSS JOIN (VALUES (60), (3600)) AS w(s)
WHERE r.status IN {TERMINAL} AND r.created_at >= :since"""
REBUILD_INSERT = (
    text(
        f"""
INSERT INTO request_rollups (bucket_seconds, bucket_start, pipeline, status, requests, timed_requests,
                             duration_sum_ms, cost_usd_sum)
SELECT w.s, {_BUCKET}, r.pipeline, r.status, count(*), count(r.duration_ms), coalesce(sum(r.duration_ms), 0),
       coalesce(sum(r.cost_usd), 0)
{_FROM}
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""
    ),
    text(
        f"""
INSERT INTO request_rollup_sketches (bucket_seconds, status, bucket_start, pipeline, sketch_index, requests)
SELECT w.s, r.status, {_BUCKET}, r.pipeline, reeltrace_sketch_index(r.duration_ms), count(*)
{_FROM} AND r.duration_ms IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
"""
    ),
    text(
        f"""
INSERT INTO stage_rollups (bucket_seconds, bucket_start, pipeline, stage_name, stages, duration_sum_ms)
SELECT w.s, {_BUCKET}, r.pipeline, s.stage_name, count(*), sum(s.duration_ms)
{_FROM.replace("CROSS JOIN", "JOIN request_stages s ON s.request_id = r.id CROSS JOIN")}
  AND s.status = 'completed' AND s.duration_ms IS NOT NULL
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""
    ),
)
REBUILT_REQUESTS: TextClause = text(
    "SELECT coalesce(sum(requests), 0) FROM request_rollups WHERE bucket_seconds = 3600 AND bucket_start >= :since"
)

# Retention keeps the hourly rollups (the past stays on the dashboards) and prunes the
# minute ones, which only serve the edges of windows over rows that still exist.
PRUNE_MINUTE_TABLES = tuple(
    text(f"DELETE FROM {table} WHERE bucket_seconds = 60 AND bucket_start < :cutoff")
    for table in ("request_rollups", "request_rollup_sketches", "stage_rollups")
)
