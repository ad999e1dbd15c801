-- Queries the export runs against PostgreSQL (psycopg placeholders).
-- Each snapshot table is read with COPY ... TO STDOUT (FORMAT csv) and parsed by
-- pyarrow; the columns are the analytical ones (no leases, no signed video URLs,
-- no JSON parameters), in the order of analytics.tables. Page bounds (ctid) are given
-- only when a full read is split into shards; NULL bounds fold away, leaving the
-- planner free to read a small delta through the updated_at index.

-- name: in_flight_horizon
-- The watermark candidate, read before the export's snapshot is taken: no row the
-- snapshot cannot see was stamped before it (see analytics.source).
-- Only this database's transactions can write its tables.
SELECT least(statement_timestamp(),
             min(xact_start) FILTER (WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
                                     AND datname = current_database()))
           AS horizon
FROM pg_stat_activity;

-- name: export_snapshot
SELECT pg_export_snapshot();

-- name: relation_pages
SELECT (pg_relation_size(%(relation)s::regclass) / current_setting('block_size')::int)::bigint;

-- name: count_video_requests
SELECT count(*) FROM video_requests WHERE updated_at >= %(window_start)s;

-- name: count_request_stages
SELECT count(*) FROM request_stages WHERE updated_at >= %(window_start)s;

-- name: count_request_events
SELECT count(*) FROM request_events WHERE recorded_at >= %(window_start)s;

-- name: purged_requests
-- Requests whose rows must leave the snapshot wherever they are: deleted by hand
-- (not by retention, whose deletions the snapshot keeps as history), or deleted and
-- created again (the new row comes back with the delta, possibly on another day).
SELECT t.request_id::text
FROM request_tombstones t
WHERE t.deleted_at >= %(window_start)s
  AND (t.reason <> 'retention'
       OR EXISTS (SELECT 1 FROM video_requests r WHERE r.id = t.request_id));

-- name: copy_video_requests
COPY (
    SELECT id, correlation_id, pipeline, user_id, guild_id, channel_id, prompt, duration_seconds,
           aspect_ratio, resolution, generate_audio, status, current_stage, progress_percentage,
           error_message, error_stage, retry_count, trace_id, created_at, started_at, completed_at,
           duration_ms, updated_at, cost_usd, billable_seconds, estimated_cost_usd, price_version
    FROM video_requests
    WHERE updated_at >= %(window_start)s
      AND (%(ctid_lo)s::tid IS NULL OR ctid >= %(ctid_lo)s::tid)
      AND (%(ctid_hi)s::tid IS NULL OR ctid < %(ctid_hi)s::tid)
) TO STDOUT (FORMAT csv);

-- name: copy_request_stages
-- A stage lives in its request's day partition, so a request's history stays together;
-- the stage row carries its request's created_at, so no join to the requests is needed.
COPY (
    SELECT id, request_id, stage_name, stage_order, status, started_at, completed_at,
           duration_ms, attempts, max_retries, error_message, updated_at, request_created_at
    FROM request_stages
    WHERE updated_at >= %(window_start)s
      AND (%(ctid_lo)s::tid IS NULL OR ctid >= %(ctid_lo)s::tid)
      AND (%(ctid_hi)s::tid IS NULL OR ctid < %(ctid_hi)s::tid)
) TO STDOUT (FORMAT csv);

-- name: copy_request_events
-- Read by recorded_at, the database's time of the write: created_at is the writer's,
-- and a journaled event replayed later keeps it.
COPY (
    SELECT id, request_id, event_type, severity, stage_name, message, data, created_at, source_service
    FROM request_events
    WHERE recorded_at >= %(window_start)s
      AND (%(ctid_lo)s::tid IS NULL OR ctid >= %(ctid_lo)s::tid)
      AND (%(ctid_hi)s::tid IS NULL OR ctid < %(ctid_hi)s::tid)
) TO STDOUT (FORMAT csv);
