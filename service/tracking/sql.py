"""The SQL of the tracking writes, one named statement each.

Each write is one statement (data-modifying CTEs, or one function call), so a
tracking write costs one round trip and is atomic even outside an explicit
transaction: the row change and its event land together or not at all.
Parameters are always bound; nothing here is built from user input.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

# Inserts the write's event for the rows of the CTE named by {source}; conflict on
# event_uid makes a replayed event a no-op.
_EVENT = """
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message,
                                data, created_at, source_service, source_host)
    SELECT :ev_uid, {source}.{id_column}, :ev_type, CAST(:ev_severity AS event_severity), :ev_stage,
           :ev_message, CAST(:ev_data AS jsonb), :ev_created_at, :ev_service, :ev_host
    FROM {source}
    {condition}
    ON CONFLICT (event_uid) DO NOTHING
"""


def _event(source: str, id_column: str = "id", condition: str = "") -> str:
    return _EVENT.format(source=source, id_column=id_column, condition=condition)


# The whole create, the per-user rate limit and the budgets included, is one call:
# the function (migrations 0003, 0010) takes the user's (and the guild's) advisory
# lock, counts the window and the spend in fresh snapshots, and inserts the request,
# its stage rows and its event.
CREATE_REQUEST: TextClause = text(
    "SELECT * FROM reeltrace_create_request(CAST(:w AS jsonb), :rate_limit, :rate_window)"
)

# A write and its event land in one transaction, so an existing event means the
# whole write was applied.
EVENT_EXISTS: TextClause = text("SELECT EXISTS (SELECT 1 FROM request_events WHERE event_uid = :uid)")

# One statement: lock the row, apply the change only from an allowed status, and
# report the status found, so the caller can tell "not found" from "invalid".
TRANSITION: TextClause = text(
    f"""
WITH cur AS (
    SELECT id, status FROM video_requests WHERE id = :request_id FOR UPDATE
), upd AS (
    UPDATE video_requests v SET
        status = CAST(:new_status AS request_status),
        started_at = CASE WHEN cur.status = 'pending' AND :new_status = 'generating'
                          THEN CAST(:at AS timestamptz) ELSE v.started_at END,
        completed_at = CASE WHEN :terminal THEN CAST(:at AS timestamptz) ELSE v.completed_at END,
        duration_ms = CASE WHEN :terminal
                           THEN floor(extract(epoch FROM (CAST(:at AS timestamptz)
                                      - coalesce(v.started_at, CAST(:at AS timestamptz)))) * 1000)::bigint
                           ELSE v.duration_ms END,
        progress_percentage = CASE WHEN :new_status = 'completed' THEN 100 ELSE v.progress_percentage END,
        -- The stage a request is in while it is open; an ended request is in none
        -- (error_stage says where a failure happened).
        current_stage = CASE WHEN :terminal THEN NULL ELSE v.current_stage END,
        operation_name = coalesce(:operation_name, v.operation_name),
        gcs_prefix = coalesce(:gcs_prefix, v.gcs_prefix),
        video_urls = coalesce(CAST(:video_urls AS text[]), v.video_urls),
        error_message = coalesce(:error_message, v.error_message),
        error_stage = coalesce(:error_stage, v.error_stage),
        error_details = coalesce(CAST(:error_details AS jsonb), v.error_details)
    FROM cur
    WHERE v.id = cur.id AND cur.status = ANY(CAST(:allowed_from AS request_status[]))
    RETURNING cur.status AS old_status, v.id, v.status, v.correlation_id, v.pipeline, v.aspect_ratio,
              v.created_at, v.started_at, v.completed_at, v.duration_ms, v.error_message
), event AS ({_event("upd", condition="WHERE upd.old_status <> upd.status")})
SELECT cur.status AS found_status, upd.*
FROM (SELECT 1) AS one
LEFT JOIN cur ON true
LEFT JOIN upd ON true
"""
)

RECORD_OPERATION: TextClause = text(
    f"""
WITH upd AS (
    UPDATE video_requests SET operation_name = :operation_name,
                              gcs_prefix = coalesce(:gcs_prefix, gcs_prefix)
    WHERE id = :request_id
    RETURNING id
), event AS ({_event("upd")})
SELECT id FROM upd
"""
)

# Progress and retry_count are derived from the stage rows: the other stages as they
# were, plus this stage as it becomes. A completed request always shows 100%.
STAGE_CHANGE: TextClause = text(
    f"""
WITH st AS (
    UPDATE request_stages s SET
        status = CAST(:status AS stage_status),
        started_at = CASE WHEN :starting THEN coalesce(s.started_at, CAST(:at AS timestamptz))
                          ELSE s.started_at END,
        completed_at = CASE WHEN :finishing THEN CAST(:at AS timestamptz) ELSE s.completed_at END,
        duration_ms = CASE WHEN :finishing
                           THEN floor(extract(epoch FROM (CAST(:at AS timestamptz)
                                      - coalesce(s.started_at, CAST(:at AS timestamptz)))) * 1000)::bigint
                           ELSE s.duration_ms END,
        attempts = coalesce(:attempts, s.attempts),
        output = coalesce(CAST(:output AS jsonb), s.output),
        error_message = coalesce(:error_message, s.error_message),
        error_details = coalesce(CAST(:error_details AS jsonb), s.error_details)
    WHERE s.request_id = :request_id AND s.stage_name = :stage_name
    RETURNING s.request_id, s.stage_name, s.stage_order, s.status, s.attempts, s.started_at,
              s.completed_at, s.duration_ms
), others AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE status IN ('completed', 'skipped')) AS done,
           coalesce(sum(greatest(attempts - 1, 0)), 0) AS retries
    FROM request_stages
    WHERE request_id = :request_id AND stage_name <> :stage_name
), req AS (
    UPDATE video_requests v SET
        -- The notification stage runs after the terminal status: it is not the
        -- request's current stage (an ended request has none).
        current_stage = CASE WHEN :starting AND v.status IN ('pending', 'generating')
                             THEN st.stage_name ELSE v.current_stage END,
        progress_percentage = CASE WHEN v.status = 'completed' THEN 100 ELSE
            (100 * (o.done + CASE WHEN st.status IN ('completed', 'skipped') THEN 1 ELSE 0 END)
             / (o.total + 1))::smallint END,
        retry_count = o.retries + greatest(st.attempts - 1, 0)
    FROM st, others o
    WHERE v.id = st.request_id
    RETURNING v.id, v.progress_percentage, v.retry_count
), event AS ({_event("st", id_column="request_id")})
SELECT st.stage_name, st.stage_order, st.status, st.attempts, st.started_at, st.completed_at,
       st.duration_ms, req.progress_percentage, req.retry_count
FROM st JOIN req ON req.id = st.request_id
"""
)

RECORD_COST: TextClause = text(
    f"""
WITH upd AS (
    UPDATE video_requests SET cost_usd = CAST(:cost_usd AS numeric),
                              billable_seconds = CAST(:billable_seconds AS numeric)
    WHERE id = :request_id
    RETURNING id
), event AS ({_event("upd")})
SELECT id FROM upd
"""
)

LOG_EVENT: TextClause = text(
    f"""
WITH req AS (SELECT id FROM video_requests WHERE id = :request_id), event AS ({_event("req")})
SELECT id FROM req
"""
)
