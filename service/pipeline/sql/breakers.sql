-- Circuit-breaker states published by every process, folded per dependency (service/pipeline/breaker_repository.py).

-- name: publish
INSERT INTO circuit_breaker_states AS b
    (process_id, dependency, state, failure_count, consecutive_failures, success_count, call_count,
     rejected_count, failure_threshold, reset_seconds, last_failure_at, opened_at, updated_at)
SELECT %(process_id)s, s->>'dependency', s->>'state', (s->>'failure_count')::bigint,
       (s->>'consecutive_failures')::integer, (s->>'success_count')::bigint, (s->>'call_count')::bigint,
       (s->>'rejected_count')::bigint, (s->>'failure_threshold')::integer, (s->>'reset_seconds')::float,
       (s->>'last_failure_at')::timestamptz, (s->>'opened_at')::timestamptz, now()
FROM jsonb_array_elements(CAST(%(states)s AS jsonb)) AS s
ON CONFLICT (process_id, dependency) DO UPDATE SET
    state = EXCLUDED.state, failure_count = EXCLUDED.failure_count,
    consecutive_failures = EXCLUDED.consecutive_failures, success_count = EXCLUDED.success_count,
    call_count = EXCLUDED.call_count, rejected_count = EXCLUDED.rejected_count,
    failure_threshold = EXCLUDED.failure_threshold, reset_seconds = EXCLUDED.reset_seconds,
    last_failure_at = EXCLUDED.last_failure_at, opened_at = EXCLUDED.opened_at, updated_at = now();

-- name: current
-- Fold the fresh rows per dependency; rows of processes that stopped publishing age out.
SELECT dependency,
       (ARRAY['closed', 'half_open', 'open'])[max(CASE state WHEN 'open' THEN 3 WHEN 'half_open' THEN 2
                                                      ELSE 1 END)] AS state,
       sum(failure_count)::bigint AS failure_count,
       max(consecutive_failures) AS consecutive_failures,
       sum(success_count)::bigint AS success_count,
       sum(call_count)::bigint AS call_count,
       sum(rejected_count)::bigint AS rejected_count,
       max(failure_threshold) AS failure_threshold,
       max(reset_seconds) AS reset_seconds,
       max(last_failure_at) AS last_failure_at,
       max(opened_at) FILTER (WHERE state <> 'closed') AS opened_at,
       count(*) AS processes,
       max(updated_at) AS updated_at
FROM circuit_breaker_states
WHERE updated_at > now() - make_interval(secs => %(fresh_seconds)s)
GROUP BY dependency
ORDER BY dependency;
