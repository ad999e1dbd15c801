-- DuckDB queries over a snapshot (views video_requests, request_stages,
-- request_events; see analytics.reader). Parameters are named: $guild_id, ...
-- Timestamps are UTC. Percentiles are exact (quantile_cont interpolates like
-- PostgreSQL's percentile_cont); durations are cast to DOUBLE first, since
-- quantile_cont of a BIGINT would return a truncated BIGINT.
-- A prompt is normalised by lower-casing it, collapsing runs of whitespace into
-- one space and trimming it.

-- name: guild_stats
-- Per bucket: counts by status, the average completed duration, what the requests
-- cost (see cost_by_guild) and the top $top prompts (a list of {prompt, requests}). The guild's rows are read once; prompts
-- are counted raw first, so each distinct prompt is normalised only once.
-- The UTC day comes from epoch arithmetic: time-zone-aware date functions (ICU)
-- cost several times more per row, for the same result on UTC timestamps.
WITH guild AS MATERIALIZED (
    SELECT CAST(date_trunc($bucket, DATE '1970-01-01' + CAST(epoch_us(created_at) // 86400000000 AS INTEGER))
                AS DATE) AS bucket_start,
           status, duration_ms, prompt, cost_usd
    FROM video_requests
    WHERE guild_id = $guild_id
), counts AS (
    SELECT bucket_start,
           count(*) AS total,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'generating') AS generating,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'timeout') AS timeout,
           avg(duration_ms) FILTER (WHERE status = 'completed') AS avg_completed_duration_ms,
           coalesce(sum(cost_usd), 0) AS cost_usd
    FROM guild
    GROUP BY bucket_start
), raw AS (
    SELECT bucket_start, prompt AS raw_prompt, count(*) AS n FROM guild GROUP BY 1, 2
), normalised AS (
    SELECT bucket_start, trim(regexp_replace(lower(raw_prompt), '\s+', ' ', 'g')) AS prompt,
           CAST(sum(n) AS BIGINT) AS requests
    FROM raw
    GROUP BY 1, 2
), top AS (
    SELECT bucket_start,
           list({'prompt': prompt, 'requests': requests} ORDER BY requests DESC, prompt) AS top_prompts
    FROM (
        SELECT * FROM normalised
        QUALIFY row_number() OVER (PARTITION BY bucket_start ORDER BY requests DESC, prompt) <= $top
    ) AS ranked
    GROUP BY bucket_start
)
SELECT counts.*, coalesce(top.top_prompts, []) AS top_prompts
FROM counts
LEFT JOIN top USING (bucket_start)
ORDER BY bucket_start;

-- name: global_latency
-- Overall, per pipeline and per aspect ratio, over requests created since $since.
WITH grouped AS (
    SELECT CASE WHEN grouping(pipeline) = 0 THEN 'pipeline'
                WHEN grouping(aspect_ratio) = 0 THEN 'aspect_ratio'
                ELSE 'all' END AS dimension,
           CASE WHEN grouping(pipeline) = 0 THEN pipeline
                WHEN grouping(aspect_ratio) = 0 THEN aspect_ratio
                ELSE 'all' END AS value,
           count(*) AS requests,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'timeout') AS timeout,
           avg(duration_ms) FILTER (WHERE status = 'completed') AS avg_ms,
           quantile_cont(CAST(duration_ms AS DOUBLE), [0.5, 0.95, 0.99])
               FILTER (WHERE status = 'completed') AS q
    FROM video_requests
    WHERE created_at >= coalesce(CAST($since AS TIMESTAMPTZ), CAST('-infinity' AS TIMESTAMPTZ))
    GROUP BY GROUPING SETS ((), (pipeline), (aspect_ratio))
)
SELECT dimension, value, requests, completed, failed, timeout,
       q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms, avg_ms,
       100.0 * (failed + timeout) / nullif(completed + failed + timeout, 0) AS failure_rate_pct
FROM grouped
ORDER BY CASE dimension WHEN 'all' THEN 0 WHEN 'pipeline' THEN 1 ELSE 2 END, value;

-- name: stage_stats
-- Runs: stage rows that started (not still pending, not skipped). Failure rate:
-- failed / finished runs of the stage. Failure share: the stage's part of all stage
-- failures in its pipeline.
WITH per_stage AS (
    SELECT r.pipeline, s.stage_name,
           min(s.stage_order) AS stage_order,
           count(*) FILTER (WHERE s.status NOT IN ('pending', 'skipped')) AS runs,
           count(*) FILTER (WHERE s.status = 'completed') AS completed,
           count(*) FILTER (WHERE s.status = 'failed') AS failed,
           avg(s.duration_ms) FILTER (WHERE s.status = 'completed') AS avg_ms,
           quantile_cont(CAST(s.duration_ms AS DOUBLE), [0.5, 0.95])
               FILTER (WHERE s.status = 'completed') AS q
    FROM request_stages s
    JOIN video_requests r ON r.id = s.request_id
    GROUP BY ALL
)
SELECT pipeline, stage_name, stage_order, runs, completed, failed, avg_ms,
       q[1] AS p50_ms, q[2] AS p95_ms,
       100.0 * failed / nullif(completed + failed, 0) AS failure_rate_pct,
       100.0 * failed / nullif(sum(failed) OVER (PARTITION BY pipeline), 0) AS failure_share_pct
FROM per_stage
ORDER BY pipeline, stage_order;

-- name: retry_attempts
-- Attempts per success: every attempt a stage made, over the stage runs that succeeded.
SELECT stage_name,
       sum(attempts) AS attempts,
       sum(greatest(attempts - 1, 0)) AS retries,
       count(*) FILTER (WHERE status = 'completed') AS successes,
       sum(attempts) / nullif(count(*) FILTER (WHERE status = 'completed'), 0) AS attempts_per_success
FROM request_stages
WHERE attempts > 0
GROUP BY ALL
-- Stages of both pipelines together, in pipeline order: `lesson` has every stage and
-- `veo`'s are a subsequence of it, so a stage's highest position is its place in the
-- full order (its lowest would put video_generation before script_generation).
ORDER BY max(stage_order), stage_name;

-- name: retry_wasted_time
-- Time spent on generations that failed or timed out, and its share of all generation time.
WITH spent AS (
    SELECT pipeline, status,
           coalesce(duration_ms, epoch_ms(completed_at) - epoch_ms(started_at)) AS ms
    FROM video_requests
    WHERE status IN ('completed', 'failed', 'timeout')
)
SELECT pipeline, status, count(*) AS requests,
       sum(ms) / 3600000.0 AS hours,
       avg(ms) / 1000.0 AS avg_seconds,
       100.0 * sum(ms) / nullif(sum(sum(ms)) OVER (PARTITION BY pipeline), 0) AS share_of_time_pct
FROM spent
GROUP BY pipeline, status
QUALIFY status IN ('failed', 'timeout')
ORDER BY pipeline, status;

-- name: user_top
SELECT user_id,
       count(*) AS requests,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'timeout') AS timeout,
       count(DISTINCT guild_id) AS guilds,
       min(created_at) AS first_request,
       max(created_at) AS last_request
FROM video_requests
GROUP BY user_id
ORDER BY requests DESC, user_id
LIMIT $top;

-- name: user_distribution
WITH per_user AS (SELECT user_id, count(*) AS n FROM video_requests GROUP BY user_id),
stats AS (
    SELECT count(*) AS users, sum(n) AS requests, avg(n) AS mean,
           quantile_cont(CAST(n AS DOUBLE), [0.5, 0.9, 0.99]) AS q, max(n) AS max
    FROM per_user
)
SELECT users, requests, mean, q[1] AS p50, q[2] AS p90, q[3] AS p99, max FROM stats;

-- name: user_histogram
WITH per_user AS (SELECT user_id, count(*) AS n FROM video_requests GROUP BY user_id)
SELECT CASE WHEN n = 1 THEN '1' WHEN n <= 5 THEN '2-5' WHEN n <= 10 THEN '6-10'
            WHEN n <= 50 THEN '11-50' WHEN n <= 100 THEN '51-100' ELSE '>100' END AS requests_per_user,
       count(*) AS users,
       sum(n) AS requests
FROM per_user
GROUP BY ALL
ORDER BY min(n);

-- name: latency_histogram
SELECT pipeline,
       CAST(floor(duration_ms / $bin_ms) * $bin_ms AS BIGINT) AS bin_start_ms,
       count(*) AS requests
FROM video_requests
WHERE status = 'completed' AND duration_ms IS NOT NULL
GROUP BY ALL
ORDER BY pipeline, bin_start_ms;

-- name: outcomes_by_day
SELECT CAST(created_at AS DATE) AS day, status, count(*) AS requests
FROM video_requests
GROUP BY ALL
ORDER BY day, status;

-- name: top_prompts
WITH raw AS (SELECT prompt AS raw_prompt, count(*) AS n FROM video_requests GROUP BY 1)
SELECT trim(regexp_replace(lower(raw_prompt), '\s+', ' ', 'g')) AS prompt, CAST(sum(n) AS BIGINT) AS requests
FROM raw
GROUP BY 1
ORDER BY requests DESC, prompt
LIMIT $top;

-- Cost: what requests cost, one definition everywhere (the API, the CLI, Prometheus'
-- reeltrace_generation_cost_usd_total and PostgreSQL agree on it): the sum of the
-- requests' cost_usd, which is every billed generation attempt at the unit price the
-- request got at submit. `unpriced` counts requests billed for a model the price
-- table had no price for (their cost is NULL, so not in cost_usd). Requests are
-- counted by their creation time (a NULL `since` parameter counts all).

-- name: cost_by_guild
SELECT coalesce(guild_id, '-') AS guild_id,
       count(*) AS requests,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       sum(billable_seconds) AS billable_seconds,
       count(*) FILTER (WHERE cost_usd IS NULL AND billable_seconds > 0) AS unpriced
FROM video_requests
WHERE $since IS NULL OR created_at >= $since
GROUP BY 1
ORDER BY cost_usd DESC, 1;

-- name: cost_by_user
SELECT user_id,
       count(*) AS requests,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       sum(billable_seconds) AS billable_seconds,
       count(*) FILTER (WHERE cost_usd IS NULL AND billable_seconds > 0) AS unpriced
FROM video_requests
WHERE $since IS NULL OR created_at >= $since
GROUP BY 1
ORDER BY cost_usd DESC, 1;

-- name: cost_by_day
SELECT CAST(date_trunc('day', created_at) AS DATE) AS day,
       count(*) AS requests,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       sum(billable_seconds) AS billable_seconds,
       count(*) FILTER (WHERE cost_usd IS NULL AND billable_seconds > 0) AS unpriced
FROM video_requests
WHERE $since IS NULL OR created_at >= $since
GROUP BY 1
ORDER BY 1;

-- name: cost_by_model
-- The model is on each billed attempt's cost_recorded event (the request keeps only
-- its totals); requests here are those with a billed attempt, by the attempt's time.
WITH attempts AS (
    SELECT request_id,
           json_extract_string(data, '$.model') AS model,
           CAST(json_extract_string(data, '$.attempt_cost_usd') AS DECIMAL(14, 6)) AS cost,
           CAST(json_extract_string(data, '$.billable_seconds') AS DECIMAL(12, 3)) AS seconds
    FROM request_events
    WHERE event_type = 'cost_recorded' AND ($since IS NULL OR created_at >= $since)
)
SELECT model,
       count(DISTINCT request_id) AS requests,
       coalesce(sum(cost), 0) AS cost_usd,
       sum(seconds) AS billable_seconds,
       count(DISTINCT request_id) FILTER (WHERE cost IS NULL) AS unpriced
FROM attempts
GROUP BY 1
ORDER BY cost_usd DESC, 1;
