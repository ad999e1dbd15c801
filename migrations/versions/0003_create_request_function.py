"""reeltrace_create_request(): create a request in one statement, rate limit included.

The per-user rate limit must count the user's requests after taking the user's
advisory lock, in a snapshot newer than the lock; in READ COMMITTED that needs a
second statement. A plpgsql function gives each of its statements a fresh
snapshot, so lock, count, insert (request, stage rows, event) run as one call, one
round trip, atomic even outside an explicit transaction.

The argument is the tracker's `CreateRequest` write as JSON (the same document the
journal keeps), so a replayed create goes through the very same code.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATE_FUNCTION = r"""
CREATE FUNCTION reeltrace_create_request(w jsonb, rate_limit integer, rate_window_seconds integer)
RETURNS TABLE (id uuid, correlation_id text, status request_status, created_at timestamptz,
               created boolean, limited boolean, window_used bigint, window_oldest timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    rid uuid := (w->>'id')::uuid;
    at timestamptz := (w->>'created_at')::timestamptz;
    used bigint := 0;
    oldest timestamptz;
    ev jsonb := w->'event';
BEGIN
    -- A repeated UUID returns the existing request and never counts against the limit.
    RETURN QUERY SELECT v.id, v.correlation_id, v.status, v.created_at, false, false, 0::bigint, NULL::timestamptz
                 FROM video_requests v WHERE v.id = rid;
    IF FOUND THEN
        RETURN;
    END IF;
    IF rate_limit IS NOT NULL THEN
        -- Serialise this user's submissions across every API replica; the count
        -- below is a new statement, so it sees every submission committed before.
        PERFORM pg_advisory_xact_lock(hashtextextended('rate:' || (w->>'user_id'), 0));
        SELECT count(*), min(v.created_at) INTO used, oldest
        FROM video_requests v
        WHERE v.user_id = w->>'user_id' AND v.created_at > at - make_interval(secs => rate_window_seconds);
        IF used >= rate_limit THEN
            RETURN QUERY SELECT rid, NULL::text, NULL::request_status, NULL::timestamptz, false, true, used, oldest;
            RETURN;
        END IF;
    END IF;
    INSERT INTO video_requests AS v (id, correlation_id, pipeline, user_id, guild_id, channel_id, prompt,
                                     duration_seconds, aspect_ratio, resolution, generate_audio, parameters,
                                     trace_id, traceparent, created_at, updated_at, lease_owner, lease_expires_at)
    VALUES (rid, w->>'correlation_id', w->>'pipeline', w->>'user_id', w->>'guild_id', w->>'channel_id',
            w->>'prompt', (w->>'duration_seconds')::smallint, w->>'aspect_ratio', w->>'resolution',
            (w->>'generate_audio')::boolean, coalesce(w->'parameters', '{}'::jsonb), w->>'trace_id',
            w->>'traceparent', at, at, w->>'lease_owner', (w->>'lease_expires_at')::timestamptz)
    ON CONFLICT ON CONSTRAINT pk_video_requests DO NOTHING;
    IF NOT FOUND THEN
        -- A concurrent create of the same UUID won the race: return that one.
        RETURN QUERY SELECT v.id, v.correlation_id, v.status, v.created_at, false, false, 0::bigint, NULL::timestamptz
                     FROM video_requests v WHERE v.id = rid;
        RETURN;
    END IF;
    INSERT INTO request_stages (request_id, stage_name, stage_order, max_retries, updated_at)
    SELECT rid, s->>'name', (s->>'order')::smallint, (s->>'max_retries')::integer, at
    FROM jsonb_array_elements(w->'stages') AS s;
    INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message, data,
                                created_at, source_service, source_host)
    VALUES ((ev->>'event_uid')::uuid, rid, ev->>'event_type', (ev->>'severity')::event_severity,
            ev->>'stage_name', ev->>'message', coalesce(ev->'data', '{}'::jsonb),
            (ev->>'created_at')::timestamptz, ev->>'source_service', ev->>'source_host')
    ON CONFLICT ON CONSTRAINT uq_request_events_event_uid DO NOTHING;
    RETURN QUERY SELECT rid, w->>'correlation_id', 'pending'::request_status, at, true, false, used, oldest;
END
$$;
"""


def upgrade() -> None:
    op.execute(CREATE_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS reeltrace_create_request(jsonb, integer, integer)")
