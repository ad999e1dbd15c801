-- The tracking writes (service/tracking/repository.py), one statement each.
--
-- Each write is one statement (data-modifying CTEs, or one function call), so a
-- tracking write costs one round trip and is atomic even outside an explicit
-- transaction: the row change and its event land together or not at all. A fenced
-- write applies only while the request still has the writer's claim generation
-- (fence NULL: a write from outside any run, e.g. an operator's, applies as
-- before). Parameters are always bound; nothing here is built from user input.

-- name: create_request
-- The whole create, the per-user rate limit and the budgets included, is one call:
-- the function (migrations/functions/) takes the user's (and the guild's) advisory
-- lock, counts the window and the spend in fresh snapshots, and inserts the request,
-- its stage rows and its event.
SELECT * FROM reeltrace_create_request(CAST(%(w)s AS jsonb), %(rate_limit)s, %(rate_window)s);

-- name: event_exists
-- A write and its event land in one transaction, so an existing event means the
-- whole write was applied (the journal's replay skips it).
SELECT EXISTS (SELECT 1 FROM request_events WHERE event_uid = %(uid)s);

-- name: transition
-- One status change: lock the row, apply the change only from an allowed status,
-- and report the status found, so the caller can tell "not found" from "invalid".
-- An ending from outside the run (the watchdog's) takes the claim and closes the
-- stages the run left open.
WITH cur AS (
    SELECT id, status, claim_generation FROM video_requests WHERE id = %(request_id)s FOR UPDATE
), upd AS (
    UPDATE video_requests v SET
        status = CAST(%(new_status)s AS request_status),
        started_at = CASE WHEN cur.status = 'pending' AND %(new_status)s = 'generating'
                          THEN CAST(%(at)s AS timestamptz) ELSE v.started_at END,
        completed_at = CASE WHEN %(terminal)s THEN CAST(%(at)s AS timestamptz) ELSE v.completed_at END,
        duration_ms = CASE WHEN %(terminal)s
                           THEN floor(extract(epoch FROM (CAST(%(at)s AS timestamptz)
                                      - coalesce(v.started_at, CAST(%(at)s AS timestamptz)))) * 1000)::bigint
                           ELSE v.duration_ms END,
        progress_percentage = CASE WHEN %(new_status)s = 'completed' THEN 100 ELSE v.progress_percentage END,
        -- The stage a request is in while it is open; an ended request is in none
        -- (error_stage says where a failure happened).
        current_stage = CASE WHEN %(terminal)s THEN NULL ELSE v.current_stage END,
        operation_name = coalesce(%(operation_name)s, v.operation_name),
        gcs_prefix = coalesce(%(gcs_prefix)s, v.gcs_prefix),
        video_urls = coalesce(CAST(%(video_urls)s AS text[]), v.video_urls),
        error_message = coalesce(%(error_message)s, v.error_message),
        error_stage = coalesce(%(error_stage)s, v.error_stage),
        error_details = coalesce(CAST(%(error_details)s AS jsonb), v.error_details),
        claim_generation = v.claim_generation + CASE WHEN %(take_claim)s THEN 1 ELSE 0 END
    FROM cur
    WHERE v.id = cur.id AND cur.status = ANY(CAST(%(allowed_from)s AS request_status[]))
      AND (CAST(%(fence)s AS bigint) IS NULL OR cur.claim_generation = CAST(%(fence)s AS bigint))
    RETURNING cur.status AS old_status, v.id, v.status, v.correlation_id, v.pipeline, v.aspect_ratio,
              v.created_at, v.started_at, v.completed_at, v.duration_ms, v.error_message
), closed AS (
    -- An ending made from outside the run (the watchdog's) closes the stages the run
    -- leaves open: the attempt in progress failed, the stages never reached are
    -- skipped. The notification stage stays open: the notification sweep runs it.
    UPDATE request_stages s SET
        status = CAST(CASE WHEN s.status = 'in_progress' THEN 'failed' ELSE 'skipped' END AS stage_status),
        completed_at = CAST(%(at)s AS timestamptz),
        duration_ms = CASE WHEN s.status = 'in_progress'
                           THEN floor(extract(epoch FROM (CAST(%(at)s AS timestamptz)
                                      - coalesce(s.started_at, CAST(%(at)s AS timestamptz)))) * 1000)::bigint
                           ELSE s.duration_ms END,
        error_message = CASE WHEN s.status = 'in_progress' THEN coalesce(%(error_message)s, s.error_message)
                             ELSE s.error_message END
    FROM upd
    WHERE %(close_stages)s AND upd.old_status <> upd.status AND s.request_id = upd.id
      AND s.status IN ('pending', 'in_progress') AND s.stage_name <> %(keep_open_stage)s
    RETURNING s.stage_name
), event AS (
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message,
                                data, created_at, source_service, source_host)
    SELECT %(ev_uid)s, upd.id, %(ev_type)s, CAST(%(ev_severity)s AS event_severity), %(ev_stage)s,
           %(ev_message)s, CAST(%(ev_data)s AS jsonb), %(ev_created_at)s, %(ev_service)s, %(ev_host)s
    FROM upd
    WHERE upd.old_status <> upd.status
    ON CONFLICT (event_uid) DO NOTHING
)
SELECT cur.status AS found_status, cur.claim_generation AS found_generation,
       (SELECT count(*) FROM closed) AS closed_stages, upd.*
FROM (SELECT 1) AS one
LEFT JOIN cur ON true
LEFT JOIN upd ON true;

-- name: record_operation
-- The generation's long-running operation, as soon as it exists.
WITH cur AS (
    SELECT id, claim_generation FROM video_requests WHERE id = %(request_id)s FOR UPDATE
), upd AS (
    UPDATE video_requests v SET operation_name = %(operation_name)s,
                                gcs_prefix = coalesce(%(gcs_prefix)s, v.gcs_prefix)
    FROM cur
    WHERE v.id = cur.id AND (CAST(%(fence)s AS bigint) IS NULL OR cur.claim_generation = CAST(%(fence)s AS bigint))
    RETURNING v.id
), event AS (
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message,
                                data, created_at, source_service, source_host)
    SELECT %(ev_uid)s, upd.id, %(ev_type)s, CAST(%(ev_severity)s AS event_severity), %(ev_stage)s,
           %(ev_message)s, CAST(%(ev_data)s AS jsonb), %(ev_created_at)s, %(ev_service)s, %(ev_host)s
    FROM upd
    
    ON CONFLICT (event_uid) DO NOTHING
)
SELECT cur.id AS found_id, cur.claim_generation AS found_generation, upd.id
FROM cur LEFT JOIN upd ON true;

-- name: stage_change
-- One stage row change. Progress and retry_count are derived from the stage rows:
-- the other stages as they were, plus this stage as it becomes. A completed
-- request always shows 100%.
WITH cur AS (
    -- Locks the request row: a claim taking it over waits for this write, or this
    -- write sees the claim's new generation and is refused.
    SELECT id, claim_generation FROM video_requests WHERE id = %(request_id)s FOR NO KEY UPDATE
), st AS (
    UPDATE request_stages s SET
        status = CAST(%(status)s AS stage_status),
        started_at = CASE WHEN %(starting)s THEN coalesce(s.started_at, CAST(%(at)s AS timestamptz))
                          ELSE s.started_at END,
        completed_at = CASE WHEN %(finishing)s THEN CAST(%(at)s AS timestamptz) ELSE s.completed_at END,
        duration_ms = CASE WHEN %(finishing)s
                           THEN floor(extract(epoch FROM (CAST(%(at)s AS timestamptz)
                                      - coalesce(s.started_at, CAST(%(at)s AS timestamptz)))) * 1000)::bigint
                           ELSE s.duration_ms END,
        attempts = coalesce(%(attempts)s, s.attempts),
        output = coalesce(CAST(%(output)s AS jsonb), s.output),
        error_message = coalesce(%(error_message)s, s.error_message),
        error_details = coalesce(CAST(%(error_details)s AS jsonb), s.error_details)
    FROM cur
    WHERE s.request_id = cur.id AND s.stage_name = %(stage_name)s
      AND (CAST(%(fence)s AS bigint) IS NULL OR cur.claim_generation = CAST(%(fence)s AS bigint))
    RETURNING s.request_id, s.stage_name, s.stage_order, s.status, s.attempts, s.started_at,
              s.completed_at, s.duration_ms
), others AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE status IN ('completed', 'skipped')) AS done,
           coalesce(sum(greatest(attempts - 1, 0)), 0) AS retries
    FROM request_stages
    WHERE request_id = %(request_id)s AND stage_name <> %(stage_name)s
), req AS (
    UPDATE video_requests v SET
        -- The notification stage runs after the terminal status: it is not the
        -- request's current stage (an ended request has none).
        current_stage = CASE WHEN %(starting)s AND v.status IN ('pending', 'generating')
                             THEN st.stage_name ELSE v.current_stage END,
        progress_percentage = CASE WHEN v.status = 'completed' THEN 100 ELSE
            (100 * (o.done + CASE WHEN st.status IN ('completed', 'skipped') THEN 1 ELSE 0 END)
             / (o.total + 1))::smallint END,
        retry_count = o.retries + greatest(st.attempts - 1, 0)
    FROM st, others o
    WHERE v.id = st.request_id
    RETURNING v.id, v.progress_percentage, v.retry_count
), event AS (
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message,
                                data, created_at, source_service, source_host)
    SELECT %(ev_uid)s, st.request_id, %(ev_type)s, CAST(%(ev_severity)s AS event_severity), %(ev_stage)s,
           %(ev_message)s, CAST(%(ev_data)s AS jsonb), %(ev_created_at)s, %(ev_service)s, %(ev_host)s
    FROM st
    
    ON CONFLICT (event_uid) DO NOTHING
)
SELECT cur.claim_generation AS found_generation, st.stage_name, st.stage_order, st.status, st.attempts,
       st.started_at, st.completed_at, st.duration_ms, req.progress_percentage, req.retry_count
FROM cur LEFT JOIN (st JOIN req ON req.id = st.request_id) ON true;

-- name: record_cost
-- A billed attempt: the request's cost totals so far (absolute values).
WITH cur AS (
    SELECT id, claim_generation FROM video_requests WHERE id = %(request_id)s FOR UPDATE
), upd AS (
    UPDATE video_requests v SET cost_usd = CAST(%(cost_usd)s AS numeric),
                                billable_seconds = CAST(%(billable_seconds)s AS numeric)
    FROM cur
    WHERE v.id = cur.id AND (CAST(%(fence)s AS bigint) IS NULL OR cur.claim_generation = CAST(%(fence)s AS bigint))
    RETURNING v.id
), event AS (
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message,
                                data, created_at, source_service, source_host)
    SELECT %(ev_uid)s, upd.id, %(ev_type)s, CAST(%(ev_severity)s AS event_severity), %(ev_stage)s,
           %(ev_message)s, CAST(%(ev_data)s AS jsonb), %(ev_created_at)s, %(ev_service)s, %(ev_host)s
    FROM upd
    
    ON CONFLICT (event_uid) DO NOTHING
)
SELECT cur.id AS found_id, cur.claim_generation AS found_generation, upd.id
FROM cur LEFT JOIN upd ON true;

-- name: log_event
-- An event of its own, under the run's fence.
WITH cur AS (
    SELECT id, claim_generation FROM video_requests WHERE id = %(request_id)s FOR NO KEY UPDATE
), req AS (
    SELECT id FROM cur WHERE (CAST(%(fence)s AS bigint) IS NULL OR cur.claim_generation = CAST(%(fence)s AS bigint))
), event AS (
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message,
                                data, created_at, source_service, source_host)
    SELECT %(ev_uid)s, req.id, %(ev_type)s, CAST(%(ev_severity)s AS event_severity), %(ev_stage)s,
           %(ev_message)s, CAST(%(ev_data)s AS jsonb), %(ev_created_at)s, %(ev_service)s, %(ev_host)s
    FROM req
    
    ON CONFLICT (event_uid) DO NOTHING
)
SELECT cur.id AS found_id, cur.claim_generation AS found_generation, req.id
FROM cur LEFT JOIN req ON true;

-- name: renew_claim
-- A run confirms its claim before an external call, lengthening its lease under
-- its fence: the answer says whether the claim still holds (no row: the request is
-- not in PostgreSQL yet, its create still journaled). The lease is only ever
-- lengthened, so a request run in the API process keeps the longer lease its
-- journaled create carried.
WITH cur AS (
    SELECT id, claim_generation FROM video_requests WHERE id = %(request_id)s
), upd AS (
    UPDATE video_requests v
    SET lease_expires_at = greatest(v.lease_expires_at, now() + make_interval(secs => %(lease_seconds)s))
    FROM cur
    WHERE v.id = cur.id AND v.claim_generation = %(fence)s
    RETURNING v.id
)
SELECT cur.claim_generation AS found_generation, upd.id
FROM cur LEFT JOIN upd ON true;

-- name: step
-- Several changes of one request in one statement (a run's folded writes, see
-- service/tracking/folding.py): stage rows, at most one status change, the cost
-- totals and the operation, every change's event, and the release of the run's
-- lease. All apply together or none do: under a lost claim (fence) or from a status
-- the change is not allowed from, nothing is written and the caller is told which.
WITH cur AS (
    SELECT id, status, claim_generation FROM video_requests WHERE id = %(request_id)s FOR UPDATE
), ok AS (
    SELECT cur.* FROM cur
    WHERE (CAST(%(fence)s AS bigint) IS NULL OR cur.claim_generation = CAST(%(fence)s AS bigint))
      AND (CAST(%(new_status)s AS request_status) IS NULL
           OR cur.status = ANY(CAST(%(allowed_from)s AS request_status[])))
), change AS (
    SELECT * FROM jsonb_to_recordset(CAST(%(stages)s AS jsonb)) AS c(
        stage_name text, status stage_status, starting boolean, finishing boolean, started_at timestamptz,
        at timestamptz, attempts integer, output jsonb, error_message text, error_details jsonb)
), st AS (
    UPDATE request_stages s SET
        status = c.status,
        -- A stage started and ended in the same step has both times (started_at, at).
        started_at = CASE WHEN c.starting THEN coalesce(s.started_at, c.started_at) ELSE s.started_at END,
        completed_at = CASE WHEN c.finishing THEN c.at ELSE s.completed_at END,
        duration_ms = CASE WHEN c.finishing
                           THEN floor(extract(epoch FROM (c.at - coalesce(s.started_at, c.started_at, c.at)))
                                      * 1000)::bigint
                           ELSE s.duration_ms END,
        attempts = coalesce(c.attempts, s.attempts),
        output = coalesce(c.output, s.output),
        error_message = coalesce(c.error_message, s.error_message),
        error_details = coalesce(c.error_details, s.error_details)
    FROM ok, change c
    WHERE s.request_id = ok.id AND s.stage_name = c.stage_name
    RETURNING s.stage_name, s.stage_order, s.status, s.attempts, s.started_at, s.completed_at, s.duration_ms
), stages AS (
    -- The stage rows as this step leaves them (a CTE sees the rows as they were).
    SELECT count(*) AS total,
           count(*) FILTER (WHERE coalesce(c.status, s.status) IN ('completed', 'skipped')) AS done,
           coalesce(sum(greatest(coalesce(c.attempts, s.attempts) - 1, 0)), 0) AS retries,
           count(c.stage_name) AS changed,
           max(c.stage_name) FILTER (WHERE c.starting) AS started
    FROM request_stages s LEFT JOIN change c ON c.stage_name = s.stage_name
    WHERE s.request_id = %(request_id)s
), upd AS (
    UPDATE video_requests v SET
        status = coalesce(CAST(%(new_status)s AS request_status), v.status),
        started_at = CASE WHEN ok.status = 'pending' AND %(new_status)s = 'generating'
                          THEN CAST(%(at)s AS timestamptz) ELSE v.started_at END,
        completed_at = CASE WHEN %(terminal)s THEN CAST(%(at)s AS timestamptz) ELSE v.completed_at END,
        duration_ms = CASE WHEN %(terminal)s
                           THEN floor(extract(epoch FROM (CAST(%(at)s AS timestamptz)
                                      - coalesce(v.started_at, CAST(%(at)s AS timestamptz)))) * 1000)::bigint
                           ELSE v.duration_ms END,
        -- The stage a request is in while it is open: the one this step starts, if
        -- any; an ended request is in none, and the notification stage, which runs
        -- after the ending, is never current.
        current_stage = CASE WHEN %(terminal)s THEN NULL
                             WHEN stages.started IS NOT NULL
                                  AND coalesce(CAST(%(new_status)s AS request_status), v.status)
                                      IN ('pending', 'generating')
                             THEN stages.started ELSE v.current_stage END,
        progress_percentage = CASE
            WHEN coalesce(CAST(%(new_status)s AS request_status), v.status) = 'completed' THEN 100
            WHEN stages.changed > 0 THEN (100 * stages.done / greatest(stages.total, 1))::smallint
            ELSE v.progress_percentage END,
        retry_count = CASE WHEN stages.changed > 0 THEN stages.retries ELSE v.retry_count END,
        operation_name = coalesce(%(operation_name)s, v.operation_name),
        gcs_prefix = coalesce(%(gcs_prefix)s, v.gcs_prefix),
        video_urls = coalesce(CAST(%(video_urls)s AS text[]), v.video_urls),
        error_message = coalesce(%(error_message)s, v.error_message),
        error_stage = coalesce(%(error_stage)s, v.error_stage),
        error_details = coalesce(CAST(%(error_details)s AS jsonb), v.error_details),
        cost_usd = CASE WHEN %(record_cost)s THEN CAST(%(cost_usd)s AS numeric) ELSE v.cost_usd END,
        billable_seconds = CASE WHEN %(record_cost)s THEN CAST(%(billable_seconds)s AS numeric)
                                ELSE v.billable_seconds END,
        lease_owner = CASE WHEN %(release_lease)s THEN NULL ELSE v.lease_owner END,
        lease_expires_at = CASE WHEN %(release_lease)s THEN NULL ELSE v.lease_expires_at END
    FROM ok, stages
    WHERE v.id = ok.id
    RETURNING ok.status AS old_status, v.id, v.status, v.correlation_id, v.pipeline, v.aspect_ratio,
              v.created_at, v.started_at, v.completed_at, v.duration_ms, v.error_message,
              v.progress_percentage, v.retry_count
), event AS (
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message,
                                data, created_at, source_service, source_host)
    SELECT e.event_uid, ok.id, e.event_type, CAST(e.severity AS event_severity), e.stage_name, e.message,
           e.data, e.created_at, e.source_service, e.source_host
    FROM ok, jsonb_to_recordset(CAST(%(events)s AS jsonb)) AS e(
        event_uid uuid, event_type text, severity text, stage_name text, message text, data jsonb,
        created_at timestamptz, source_service text, source_host text, if_changed boolean)
    -- A status change's event is written only when the status changes (setting the
    -- current status again is a no-op, as in TRANSITION).
    WHERE NOT e.if_changed OR ok.status IS DISTINCT FROM CAST(%(new_status)s AS request_status)
    ON CONFLICT (event_uid) DO NOTHING
)
SELECT cur.status AS found_status, cur.claim_generation AS found_generation,
       upd.old_status, upd.id, upd.status, upd.correlation_id, upd.pipeline, upd.aspect_ratio,
       upd.created_at, upd.started_at, upd.completed_at, upd.duration_ms, upd.error_message,
       upd.progress_percentage, upd.retry_count,
       st.stage_name, st.stage_order, st.status AS stage_status, st.attempts, st.started_at AS stage_started_at,
       st.completed_at AS stage_completed_at, st.duration_ms AS stage_duration_ms
FROM (SELECT 1) AS one
LEFT JOIN cur ON true
LEFT JOIN upd ON true
LEFT JOIN st ON true;
