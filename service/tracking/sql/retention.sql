-- Retention's deletions (service/tracking/retention_repository.py).

-- name: try_lock
-- Only one replica runs the job at a time; the others skip this round.
SELECT pg_try_advisory_lock(%(key)s) AS got;

-- name: unlock
SELECT pg_advisory_unlock(%(key)s) AS released;

-- name: mark_retention
-- Read by the delete trigger: the tombstones it leaves say why the rows went.
SET LOCAL reeltrace.delete_reason = 'retention';

-- name: delete_batch
DELETE FROM video_requests
WHERE id IN (
    SELECT id FROM video_requests
    WHERE created_at < %(cutoff)s AND status IN ('completed', 'failed', 'timeout')
    LIMIT %(batch)s
);

-- name: prune_minute_request_rollups
-- The hourly rollups stay (the past stays on the dashboards); the minute ones only
-- serve the edges of windows over rows that still exist.
DELETE FROM request_rollups WHERE bucket_seconds = 60 AND bucket_start < %(cutoff)s;

-- name: prune_minute_request_rollup_sketches
DELETE FROM request_rollup_sketches WHERE bucket_seconds = 60 AND bucket_start < %(cutoff)s;

-- name: prune_minute_stage_rollups
DELETE FROM stage_rollups WHERE bucket_seconds = 60 AND bucket_start < %(cutoff)s;
