-- The event stream's reads (service/streaming/repository.py).

-- name: state_by_id
SELECT id, correlation_id, user_id, status FROM video_requests WHERE id = %(id)s;

-- name: state_by_correlation
SELECT id, correlation_id, user_id, status FROM video_requests WHERE correlation_id = %(correlation_id)s;

-- name: max_event_id
SELECT coalesce(max(id), 0) AS max_id FROM request_events;

-- name: events_after_head
-- Events after a cursor (skipping ids already sent), with their request's current state;
-- `events_after()` adds the filters given (events_after_and_*), then the tail.
SELECT e.id, e.request_id, r.correlation_id, r.user_id, e.event_type, e.severity, e.stage_name,
       e.message, e.data, e.created_at, r.status, r.current_stage, r.progress_percentage
FROM request_events e
JOIN video_requests r ON r.id = e.request_id
WHERE e.id > %(after_id)s AND NOT (e.id = ANY(CAST(%(skip)s AS bigint[])));

-- name: events_after_and_request_id
AND e.request_id = %(request_id)s;

-- name: events_after_and_user_id
AND r.user_id = %(user_id)s;

-- name: events_after_tail
ORDER BY e.id
LIMIT %(limit)s;
