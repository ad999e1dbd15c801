"""request_stages.request_created_at: each stage carries its request's creation time.

A stage lives in its request's day partition of the analytics snapshot. With the
request's `created_at` kept on the stage row, the export reads request_stages alone
(and in page-range shards) instead of joining every stage to its request.

`reeltrace_create_request` sets the column with the request it creates; any other
insert (psql, fixtures) gets it from a BEFORE INSERT trigger that reads the request
row. A request's `created_at` never changes after its insert, so the copy cannot go
stale.

The backfill runs with the stages' updated_at trigger disabled: the values it writes
are those the export already computed through the join, so no snapshot needs them
again, and bumping every `updated_at` would make the next incremental export re-read
every stage.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
ALTER TABLE request_stages DISABLE TRIGGER request_stages_updated_at;
UPDATE request_stages s SET request_created_at = r.created_at
FROM video_requests r
WHERE r.id = s.request_id;
ALTER TABLE request_stages ENABLE TRIGGER request_stages_updated_at;
"""

# Without its request, the stage fails as the foreign key would have failed it (the
# NOT NULL check runs before the foreign key's, and would name the wrong problem).
STAGE_TRIGGER = """
CREATE FUNCTION reeltrace_set_stage_request_created_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT r.created_at INTO NEW.request_created_at FROM video_requests r WHERE r.id = NEW.request_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insert or update on table "request_stages" violates foreign key constraint "%"',
                        'fk_request_stages_request_id_video_requests'
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'fk_request_stages_request_id_video_requests',
                  TABLE = 'request_stages',
                  DETAIL = format('Key (request_id)=(%s) is not present in table "video_requests".',
                                  NEW.request_id);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER request_stages_request_created_at
    BEFORE INSERT ON request_stages
    FOR EACH ROW
    WHEN (NEW.request_created_at IS NULL)
    EXECUTE FUNCTION reeltrace_set_stage_request_created_at();
"""

DROP_STAGE_TRIGGER = """
DROP TRIGGER IF EXISTS request_stages_request_created_at ON request_stages;
DROP FUNCTION IF EXISTS reeltrace_set_stage_request_created_at();
"""

# Revision 0003's function with one change: the stage rows get the request's `at`.
CREATE_FUNCTION = r"""
CREATE OR REPLACE FUNCTION reeltrace_create_request(w jsonb, rate_limit integer, rate_window_seconds integer)
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
    INSERT INTO request_stages (request_id, stage_name, stage_order, max_retries, updated_at, request_created_at)
    SELECT rid, s->>'name', (s->>'order')::smallint, (s->>'max_retries')::integer, at, at
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

# Revision 0003's function, as it was: what the downgrade puts back.
PREVIOUS_FUNCTION = r"""
CREATE OR REPLACE FUNCTION reeltrace_create_request(w jsonb, rate_limit integer, rate_window_seconds integer)
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
    op.add_column(
        "request_stages", sa.Column("request_created_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(BACKFILL)
    op.alter_column("request_stages", "request_created_at", nullable=False)
    op.execute(STAGE_TRIGGER)
    op.execute(CREATE_FUNCTION)


def downgrade() -> None:
    op.execute(PREVIOUS_FUNCTION)
    op.execute(DROP_STAGE_TRIGGER)
    op.drop_column("request_stages", "request_created_at")
