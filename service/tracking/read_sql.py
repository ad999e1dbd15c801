"""The SQL of the tracking reads (history, detail, events, dashboard, hourly metrics)."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import TextClause, text

REQUEST_COLUMNS = """
    r.id, r.correlation_id, r.pipeline, r.user_id, r.guild_id, r.channel_id, r.prompt, r.status,
    r.current_stage, r.progress_percentage, r.created_at, r.started_at, r.completed_at, r.duration_ms,
    r.error_message, r.error_stage, r.trace_id
"""

DETAIL_COLUMNS = (
    REQUEST_COLUMNS
    + """,
    r.duration_seconds, r.aspect_ratio, r.resolution, r.generate_audio, r.parameters, r.operation_name,
    r.gcs_prefix, r.video_urls, r.error_details, r.retry_count, r.updated_at,
    r.cost_usd, r.billable_seconds, r.estimated_cost_usd, r.usd_per_second, r.price_version,
    extract(epoch FROM (r.started_at - r.created_at))::double precision AS queueing_seconds,
    -- An ended request whose notification stage is still to run by a worker: the run
    -- that ended it holds the lease until that stage is done (a run that died leaves an
    -- expired lease, which the sweep takes over); with no lease, none is coming.
    (r.status IN ('completed', 'failed', 'timeout') AND r.lease_owner IS NOT NULL AND EXISTS (
        SELECT 1 FROM request_stages n
        WHERE n.request_id = r.id AND n.stage_name = 'notification' AND n.status IN ('pending', 'in_progress')
    )) AS notification_due
"""
)

# A request with its stages in one statement (one round trip): the stages come as
# a JSON array, in stage order, under the names the API's StageRead uses.
_STAGES_JSON = """
    coalesce((
        SELECT json_agg(json_build_object(
                   'name', s.stage_name, 'order', s.stage_order, 'status', s.status,
                   'started_at', s.started_at, 'completed_at', s.completed_at,
                   'duration_seconds', s.duration_ms / 1000.0, 'attempts', s.attempts,
                   'max_retries', s.max_retries, 'error_message', s.error_message, 'output', s.output
               ) ORDER BY s.stage_order)
        FROM request_stages s
        WHERE s.request_id = r.id
    ), '[]'::json) AS stages
"""

REQUEST_BY_ID: TextClause = text(
    f"SELECT {DETAIL_COLUMNS}, {_STAGES_JSON} FROM video_requests r WHERE r.id = :id"
)
REQUEST_BY_CORRELATION: TextClause = text(
    f"SELECT {DETAIL_COLUMNS}, {_STAGES_JSON} FROM video_requests r WHERE r.correlation_id = :correlation_id"
)
REQUEST_EXISTS: TextClause = text("SELECT 1 AS found FROM video_requests WHERE id = :id")
ID_BY_CORRELATION: TextClause = text("SELECT id FROM video_requests WHERE correlation_id = :correlation_id")

EVENTS_OF_REQUEST: TextClause = text(
    """
SELECT id, request_id, event_type, severity, stage_name, message, data, created_at,
       source_service, source_host
FROM request_events
WHERE request_id = :id AND id > :after_id
ORDER BY id
LIMIT :limit
"""
)

# Keyset pagination rides the (user_id, created_at DESC, id DESC) index; the cursor
# is the last row's (created_at, id). Only the filters given appear in the statement,
# so every variant gets a plan that uses the right index (no `:x IS NULL OR` guards).
_FILTERS = {
    "user_id": "r.user_id = :user_id",
    "guild_id": "r.guild_id = :guild_id",
    "pipeline": "r.pipeline = :pipeline",
    "status": "r.status = CAST(:status AS request_status)",
    "since": "r.created_at >= :since",
    "cursor": "(r.created_at, r.id) < (CAST(:cursor_at AS timestamptz), CAST(:cursor_id AS uuid))",
}


@lru_cache(maxsize=64)
def list_requests(filters: frozenset[str]) -> TextClause:
    """Requests newest first, restricted by the named filters (keys of _FILTERS)."""
    where = " AND ".join(_FILTERS[f] for f in sorted(filters)) or "true"
    return text(
        f"""
SELECT {REQUEST_COLUMNS}
FROM video_requests r
WHERE {where}
ORDER BY r.created_at DESC, r.id DESC
LIMIT :limit OFFSET :offset
"""
    )


# One pass over the window through the covering (created_at) INCLUDE (status,
# duration_ms) index; active requests come from the partial index on open statuses.
# The window is a literal, not a parameter: with a parameter, a prepared statement's
# generic plan guesses a third of the table and scans it all.
@lru_cache(maxsize=8)
def dashboard(window_hours: int) -> TextClause:
    return text(
        f"""
SELECT now() - make_interval(hours => {int(window_hours)}) AS since,
       count(*) AS total,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'generating') AS generating,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'timeout') AS timeout,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)
           FILTER (WHERE status = 'completed') AS percentiles,
       avg(duration_ms) FILTER (WHERE status = 'completed')::double precision AS avg_ms,
       (SELECT count(*) FROM video_requests WHERE status IN ('pending', 'generating')) AS active,
       coalesce(sum(cost_usd), 0) AS spend_usd
FROM video_requests
WHERE created_at >= now() - make_interval(hours => {int(window_hours)})
"""
    )


# What the requests created since a time cost (billed attempts of open ones included).
SPEND: TextClause = text(
    "SELECT coalesce(sum(cost_usd), 0) AS spend_usd FROM video_requests WHERE created_at >= :since"
)


# Hours are whole UTC hours (date_bin, not the session's time zone), as the rollups' are.
HOURLY: TextClause = text(
    """
SELECT date_bin(interval '1 hour', created_at, TIMESTAMPTZ '2000-01-01 00:00+00') AS hour,
       count(*) AS total_requests,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'timeout') AS timed_out,
       count(*) FILTER (WHERE status IN ('pending', 'generating')) AS active,
       round(100.0 * count(*) FILTER (WHERE status IN ('failed', 'timeout'))
             / nullif(count(*) FILTER (WHERE status IN ('completed', 'failed', 'timeout')), 0),
             2)::double precision AS failure_rate_pct,
       avg(duration_ms) FILTER (WHERE status = 'completed')::double precision AS avg_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
           FILTER (WHERE status = 'completed') AS p95_duration_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms)
           FILTER (WHERE status = 'completed') AS p50_duration_ms
FROM video_requests
WHERE created_at >= :since AND created_at < :until
  AND (CAST(:pipeline AS text) IS NULL OR pipeline = :pipeline)
GROUP BY 1
ORDER BY 1
"""
)

HOURLY_STAGES: TextClause = text(
    """
SELECT date_bin(interval '1 hour', r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00') AS hour, s.stage_name,
       avg(s.duration_ms)::double precision AS avg_duration_ms
FROM video_requests r
JOIN request_stages s ON s.request_id = r.id
WHERE r.created_at >= :since AND r.created_at < :until
  AND (CAST(:pipeline AS text) IS NULL OR r.pipeline = :pipeline)
  AND s.status = 'completed'
GROUP BY 1, 2
"""
)

# A pending request's age runs from its creation, a generating one's from its start: that is
# what the watchdog holds against the pipeline's budget, and the alert on this gauge assumes
# it (time spent queued would otherwise page as a stuck generation).
OLDEST_ACTIVE: TextClause = text(
    """
SELECT status,
       extract(epoch FROM (now() - min(CASE WHEN status = 'generating'
                                            THEN coalesce(started_at, created_at)
                                            ELSE created_at END)))::double precision AS age_seconds
FROM video_requests
WHERE status IN ('pending', 'generating')
GROUP BY status
"""
)

LATEST_EVENT: TextClause = text(
    """
SELECT id, request_id, event_type, severity, stage_name, message, data, created_at,
       source_service, source_host
FROM request_events
WHERE request_id = :id AND event_type = :event_type
  AND stage_name IS NOT DISTINCT FROM CAST(:stage AS text)
ORDER BY id DESC
LIMIT 1
"""
)
