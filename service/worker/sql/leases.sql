-- The work queue: claims, leases, releases and the watchdog's sweeps (service/worker/repository.py).

-- name: claim
-- A claim returns the whole row: the run reads its request back from it
-- (`VideoRequest.from_record`), so a request field given its own column arrives
-- without this statement naming it.
UPDATE video_requests v
SET lease_owner = %(worker)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    claims = v.claims + 1,
    claim_generation = v.claim_generation + 1
FROM (
    SELECT id FROM video_requests
    WHERE status IN ('pending', 'generating')
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    ORDER BY created_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS free
WHERE v.id = free.id
RETURNING v.*;

-- name: heartbeat
UPDATE video_requests v
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
FROM unnest(CAST(%(ids)s AS uuid[]), CAST(%(generations)s AS bigint[])) AS held(id, generation)
WHERE v.id = held.id AND v.claim_generation = held.generation AND v.lease_owner = %(worker)s
RETURNING v.id;

-- name: release
UPDATE video_requests v SET lease_owner = NULL, lease_expires_at = NULL
FROM unnest(CAST(%(ids)s AS uuid[]), CAST(%(generations)s AS bigint[])) AS held(id, generation)
WHERE v.id = held.id AND v.claim_generation = held.generation AND v.lease_owner = %(worker)s;

-- name: hand_over
-- A run stopped before its end hands its request over: the lease expires at once (so
-- another worker claims it now) but keeps its owner, which marks a terminal request
-- whose run never finished its notification (see CLAIM_UNNOTIFIED).
UPDATE video_requests v SET lease_expires_at = now()
FROM unnest(CAST(%(ids)s AS uuid[]), CAST(%(generations)s AS bigint[])) AS held(id, generation)
WHERE v.id = held.id AND v.claim_generation = held.generation AND v.lease_owner = %(worker)s;

-- name: claim_unnotified
-- Terminal requests still holding an expired lease: the run that ended them died (or
-- was stopped) before the notification stage, which runs after the terminal status.
-- A finished run always clears its lease, so these are exactly the unfinished ones.
-- Only recently ended requests are looked at, on the updated_at index (lease changes
-- do not move updated_at), so the sweep stays cheap on a large table.
UPDATE video_requests v
SET lease_owner = %(worker)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    claims = v.claims + 1,
    claim_generation = v.claim_generation + 1
FROM (
    SELECT id FROM video_requests
    WHERE updated_at > now() - make_interval(secs => %(window_seconds)s)
      AND status IN ('completed', 'failed', 'timeout')
      AND lease_owner IS NOT NULL AND lease_expires_at < now()
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS free
WHERE v.id = free.id
RETURNING v.*;

-- name: owe_notification
-- A request the watchdog ended still owes its notification, which no run will send: the
-- run it cut off (if any) is cancelled or pre-empted, and a request still queued had none.
-- Its lease expires now, in the watchdog's name if nobody held it, so the notification
-- sweep (CLAIM_UNNOTIFIED) of any worker takes it over.
UPDATE video_requests SET lease_owner = coalesce(lease_owner, %(worker)s), lease_expires_at = now()
WHERE id = %(id)s AND status IN ('completed', 'failed', 'timeout');

-- name: stuck_generating
SELECT id, pipeline, current_stage, lease_owner, claim_generation,
       extract(epoch FROM (now() - started_at))::double precision AS age_seconds
FROM video_requests
WHERE status = 'generating' AND pipeline = %(pipeline)s
  AND started_at < now() - make_interval(secs => %(budget_seconds)s)
LIMIT 500;

-- name: stuck_pending
SELECT id, pipeline, lease_owner, claim_generation,
       extract(epoch FROM (now() - created_at))::double precision AS age_seconds
FROM video_requests
WHERE status = 'pending' AND created_at < now() - make_interval(secs => %(budget_seconds)s)
LIMIT 500;
