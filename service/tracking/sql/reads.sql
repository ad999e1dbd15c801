-- The tracking reads: history, detail, events, the exact dashboard and hourly metrics
-- (service/tracking/queries.py; the builders in service/tracking/read_statements.py).

-- name: request_detail
SELECT
    r.id, r.correlation_id, r.pipeline, r.user_id, r.guild_id, r.channel_id, r.prompt, r.status,
    r.current_stage, r.progress_percentage, r.created_at, r.started_at, r.completed_at, r.duration_ms,
    r.error_message, r.error_stage, r.trace_id,
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
    )) AS notification_due,
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
FROM video_requests r
-- By its UUID, or (when that is NULL) by its correlation ID, which is unique.
WHERE r.id = coalesce(CAST(%(id)s AS uuid),
                      (SELECT c.id FROM video_requests c WHERE c.correlation_id = %(correlation_id)s));

-- name: stored_request
SELECT * FROM video_requests WHERE id = %(id)s;

-- name: request_exists
SELECT 1 AS found FROM video_requests WHERE id = %(id)s;

-- name: id_by_correlation
SELECT id FROM video_requests WHERE correlation_id = %(correlation_id)s;

-- name: events_of_request
SELECT id, request_id, event_type, severity, stage_name, message, data, created_at,
       source_service, source_host
FROM request_events
WHERE request_id = %(id)s AND id > %(after_id)s
ORDER BY id
LIMIT %(limit)s;

-- name: spend
-- What the requests created since a time cost (billed attempts of open ones included).
SELECT coalesce(sum(cost_usd), 0) AS spend_usd FROM video_requests WHERE created_at >= %(since)s;

-- name: hourly
-- Hours are whole UTC hours (date_bin, not the session's time zone), as the rollups' are.
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
WHERE created_at >= %(since)s AND created_at < %(until)s
  AND (CAST(%(pipeline)s AS text) IS NULL OR pipeline = %(pipeline)s)
GROUP BY 1
ORDER BY 1;

-- name: hourly_stages
SELECT date_bin(interval '1 hour', r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00') AS hour, s.stage_name,
       avg(s.duration_ms)::double precision AS avg_duration_ms
FROM video_requests r
JOIN request_stages s ON s.request_id = r.id
WHERE r.created_at >= %(since)s AND r.created_at < %(until)s
  AND (CAST(%(pipeline)s AS text) IS NULL OR r.pipeline = %(pipeline)s)
  AND s.status = 'completed'
GROUP BY 1, 2;

-- name: oldest_active
-- A pending request's age runs from its creation, a generating one's from its start: that is
-- what the watchdog holds against the pipeline's budget, and the alert on this gauge assumes
-- it (time spent queued would otherwise page as a stuck generation).
SELECT status,
       extract(epoch FROM (now() - min(CASE WHEN status = 'generating'
                                            THEN coalesce(started_at, created_at)
                                            ELSE created_at END)))::double precision AS age_seconds
FROM video_requests
WHERE status IN ('pending', 'generating')
GROUP BY status;

-- name: latest_event
SELECT id, request_id, event_type, severity, stage_name, message, data, created_at,
       source_service, source_host
FROM request_events
WHERE request_id = %(id)s AND event_type = %(event_type)s
  AND stage_name IS NOT DISTINCT FROM CAST(%(stage)s AS text)
ORDER BY id DESC
LIMIT 1;

-- name: list_requests_head
-- Requests newest first: `list_requests()` adds the filters given (list_requests_and_*)
-- to this WHERE, then the tail. Keyset pagination rides the (user_id, created_at DESC,
-- id DESC) index; the cursor is the last row's (created_at, id). Only the filters given
-- appear in the statement, so every variant gets a plan that uses the right index (no
-- `x IS NULL OR` guards).
SELECT r.id, r.correlation_id, r.pipeline, r.user_id, r.guild_id, r.channel_id, r.prompt, r.status,
       r.current_stage, r.progress_percentage, r.created_at, r.started_at, r.completed_at, r.duration_ms,
       r.error_message, r.error_stage, r.trace_id
FROM video_requests r
WHERE true;

-- name: list_requests_and_user_id
AND r.user_id = %(user_id)s;

-- name: list_requests_and_guild_id
AND r.guild_id = %(guild_id)s;

-- name: list_requests_and_pipeline
AND r.pipeline = %(pipeline)s;

-- name: list_requests_and_status
AND r.status = CAST(%(status)s AS request_status);

-- name: list_requests_and_since
AND r.created_at >= %(since)s;

-- name: list_requests_and_cursor
AND (r.created_at, r.id) < (CAST(%(cursor_at)s AS timestamptz), CAST(%(cursor_id)s AS uuid));

-- name: list_requests_tail
ORDER BY r.created_at DESC, r.id DESC
LIMIT %(limit)s OFFSET %(offset)s;
