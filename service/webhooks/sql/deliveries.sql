-- Callback deliveries: enqueued, claimed, attempted, settled (service/webhooks/repository.py).

-- name: enqueue
-- A repeated enqueue (a resumed run) returns the existing delivery unchanged.
WITH ins AS (
    INSERT INTO webhook_deliveries AS d (id, request_id, event, url, host, payload, next_attempt_at,
                                         deliver_until)
    VALUES (%(id)s, %(request_id)s, %(event)s, %(url)s, %(host)s, CAST(%(payload)s AS jsonb), now(),
            now() + make_interval(secs => %(window_seconds)s))
    ON CONFLICT (request_id, event) DO NOTHING
    RETURNING d.id, d.request_id, d.event, d.url, d.host, d.payload, d.outcome, d.attempts,
    d.last_status_code, d.last_latency_ms, d.last_error, d.last_attempt_at, d.next_attempt_at,
    d.deliver_until, d.delivered_at, d.created_at
)
SELECT * FROM ins
UNION ALL
SELECT d.id, d.request_id, d.event, d.url, d.host, d.payload, d.outcome, d.attempts,
    d.last_status_code, d.last_latency_ms, d.last_error, d.last_attempt_at, d.next_attempt_at,
    d.deliver_until, d.delivered_at, d.created_at FROM webhook_deliveries d
WHERE d.request_id = %(request_id)s AND d.event = %(event)s AND NOT EXISTS (SELECT 1 FROM ins);

-- name: claim_one
UPDATE webhook_deliveries d
SET claimed_until = now() + make_interval(secs => %(lease_seconds)s), claim_token = %(token)s
WHERE d.id = %(id)s AND d.outcome = 'pending' AND (d.claimed_until IS NULL OR d.claimed_until < now()) AND d.next_attempt_at <= now()
RETURNING d.id, d.request_id, d.event, d.url, d.host, d.payload, d.outcome, d.attempts,
    d.last_status_code, d.last_latency_ms, d.last_error, d.last_attempt_at, d.next_attempt_at,
    d.deliver_until, d.delivered_at, d.created_at, (SELECT v.correlation_id FROM video_requests v WHERE v.id = d.request_id) AS correlation_id,
    (SELECT v.traceparent FROM video_requests v WHERE v.id = d.request_id) AS traceparent;

-- name: claim_due
-- Due deliveries, oldest due first, at most `per_host` in flight per receiver host
-- (counting those other sweeps hold): a receiver that hangs or refuses holds that many
-- slots, never the sweep, so every other receiver's deliveries still go out.
WITH busy AS (
    SELECT host, count(*) AS n FROM webhook_deliveries
    WHERE outcome = 'pending' AND claimed_until >= now()
    GROUP BY host
), ranked AS (
    SELECT d.id, d.host, row_number() OVER (PARTITION BY d.host ORDER BY d.next_attempt_at) AS rn
    FROM webhook_deliveries d
    WHERE d.outcome = 'pending' AND (d.claimed_until IS NULL OR d.claimed_until < now()) AND d.next_attempt_at <= now()
), allowed AS (
    SELECT ranked.id FROM ranked LEFT JOIN busy USING (host)
    WHERE ranked.rn + coalesce(busy.n, 0) <= %(per_host)s
), free AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.id IN (SELECT id FROM allowed) AND d.outcome = 'pending' AND (d.claimed_until IS NULL OR d.claimed_until < now()) AND d.next_attempt_at <= now()
    ORDER BY d.next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET claimed_until = now() + make_interval(secs => %(lease_seconds)s), claim_token = %(token)s
FROM free
WHERE d.id = free.id
RETURNING d.id, d.request_id, d.event, d.url, d.host, d.payload, d.outcome, d.attempts,
    d.last_status_code, d.last_latency_ms, d.last_error, d.last_attempt_at, d.next_attempt_at,
    d.deliver_until, d.delivered_at, d.created_at, (SELECT v.correlation_id FROM video_requests v WHERE v.id = d.request_id) AS correlation_id,
    (SELECT v.traceparent FROM video_requests v WHERE v.id = d.request_id) AS traceparent;

-- name: record_attempt
-- The attempt's result on the delivery (only while this claim holds it), its event, and
-- the notification stage: in progress while retries remain, completed once delivered,
-- failed when the window is over. The request's own status is never touched.
WITH d AS (
    UPDATE webhook_deliveries d SET
        attempts = d.attempts + 1,
        outcome = %(outcome)s,
        last_status_code = %(status_code)s,
        last_latency_ms = %(latency_ms)s,
        last_error = %(error)s,
        last_attempt_at = CAST(%(at)s AS timestamptz),
        next_attempt_at = CAST(%(next_attempt_at)s AS timestamptz),
        delivered_at = CASE WHEN %(outcome)s = 'delivered' THEN CAST(%(at)s AS timestamptz) END,
        claimed_until = NULL,
        claim_token = NULL,
        updated_at = clock_timestamp()
    WHERE d.id = %(id)s AND d.claim_token = %(token)s
    RETURNING d.id, d.request_id, d.event, d.url, d.host, d.payload, d.outcome, d.attempts,
    d.last_status_code, d.last_latency_ms, d.last_error, d.last_attempt_at, d.next_attempt_at,
    d.deliver_until, d.delivered_at, d.created_at
), st AS (
    UPDATE request_stages s SET
        status = CAST(%(stage_status)s AS stage_status),
        started_at = coalesce(s.started_at, CAST(%(at)s AS timestamptz)),
        completed_at = CASE WHEN %(outcome)s <> 'pending' THEN CAST(%(at)s AS timestamptz) END,
        duration_ms = CASE WHEN %(outcome)s <> 'pending'
                           THEN floor(extract(epoch FROM (CAST(%(at)s AS timestamptz)
                                      - coalesce(s.started_at, CAST(%(at)s AS timestamptz)))) * 1000)::bigint
                      END,
        attempts = greatest(s.attempts, 1),
        output = CAST(%(output)s AS jsonb),
        error_message = %(error)s
    FROM d
    WHERE s.request_id = d.request_id AND s.stage_name = 'notification'
    RETURNING s.request_id
), event AS (
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message, data,
                                created_at, source_service, source_host)
    SELECT %(ev_uid)s, d.request_id, %(ev_type)s, CAST(%(ev_severity)s AS event_severity), 'notification',
           %(ev_message)s, CAST(%(ev_data)s AS jsonb), CAST(%(at)s AS timestamptz), %(ev_service)s, %(ev_host)s
    FROM d
)
SELECT * FROM d;

-- name: redeliver
-- Send again: pending now, with a fresh window; an attempt in flight keeps its claim.
WITH d AS (
    UPDATE webhook_deliveries d SET
        outcome = 'pending',
        next_attempt_at = now(),
        deliver_until = greatest(d.deliver_until, now() + make_interval(secs => %(window_seconds)s)),
        delivered_at = NULL,
        updated_at = clock_timestamp()
    WHERE d.id = %(id)s
    RETURNING d.id, d.request_id, d.event, d.url, d.host, d.payload, d.outcome, d.attempts,
    d.last_status_code, d.last_latency_ms, d.last_error, d.last_attempt_at, d.next_attempt_at,
    d.deliver_until, d.delivered_at, d.created_at
), st AS (
    UPDATE request_stages s SET status = 'in_progress', completed_at = NULL, duration_ms = NULL
    FROM d
    WHERE s.request_id = d.request_id AND s.stage_name = 'notification'
    RETURNING s.request_id
), event AS (
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message, data,
                                created_at, source_service, source_host)
    SELECT %(ev_uid)s, d.request_id, 'notification_redelivery', 'info', 'notification',
           'callback redelivery requested', jsonb_build_object('delivery_id', d.id, 'by', CAST(%(by)s AS text)),
           now(), %(ev_service)s, %(ev_host)s
    FROM d
)
SELECT * FROM d;

-- name: for_request
SELECT d.id, d.request_id, d.event, d.url, d.host, d.payload, d.outcome, d.attempts,
    d.last_status_code, d.last_latency_ms, d.last_error, d.last_attempt_at, d.next_attempt_at,
    d.deliver_until, d.delivered_at, d.created_at FROM webhook_deliveries d WHERE d.request_id = %(request_id)s ORDER BY d.created_at;

-- name: attempts_for_request
-- The attempt events of a request's deliveries, oldest first: the delivery history.
SELECT data, created_at FROM request_events
WHERE request_id = %(request_id)s
  AND event_type IN ('notification_sent', 'notification_attempt_failed', 'notification_gave_up')
ORDER BY id;
