"""Cost per request, per-guild budget overrides, and budgets checked in the create function.

- `video_requests` gains what it cost: `cost_usd` (NULL while unknown, and for good
  when a billed generation's model has no price), `billable_seconds` (output seconds
  the generation backend billed, every attempt included), `price_version` and
  `usd_per_second` (the table and unit price it was priced with at submit, so a new
  price table reprices only new requests) and `estimated_cost_usd` (what it is
  expected to cost: its reservation against budgets until it ends).
- A request that ends with nothing billed (no `cost_recorded` event) cost 0: a
  trigger sets it, whichever writer ends it (the runner, the watchdog, a psql session).
- `guild_budgets` holds per-guild daily/monthly limits (`reeltrace budgets set`); a
  NULL limit falls back to the `REELTRACE_BUDGET_GUILD_*` default.
- `reeltrace_create_request` is revision 0005's function plus the budget check: under
  the same advisory locks as the rate limit (the user's, and the guild's), in the
  same single statement, it sums what the user and the guild spent today and this
  month (UTC) plus what their unfinished requests reserve, and refuses the request
  when adding its estimate would go over a limit. Two API processes therefore cannot
  overspend together: the second waits for the first's insert to commit and counts
  it. The return type grows four columns, so the function is dropped and re-created.

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USD = sa.Numeric(14, 6)

ZERO_COST_TRIGGER = """
CREATE FUNCTION reeltrace_zero_cost_when_unbilled() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Nothing billed (no cost_recorded event) means nothing spent, whatever the price
    -- table says of the model; anything billed but unpriced stays NULL.
    IF NEW.cost_usd IS NULL AND NEW.billable_seconds = 0 AND NOT EXISTS (
        SELECT 1 FROM request_events e WHERE e.request_id = NEW.id AND e.event_type = 'cost_recorded'
    ) THEN
        NEW.cost_usd := 0;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER video_requests_zero_cost
    BEFORE UPDATE OF status ON video_requests
    FOR EACH ROW
    WHEN (NEW.status IN ('completed', 'failed', 'timeout') AND OLD.status IN ('pending', 'generating'))
    EXECUTE FUNCTION reeltrace_zero_cost_when_unbilled();
"""

DROP_ZERO_COST_TRIGGER = """
DROP TRIGGER IF EXISTS video_requests_zero_cost ON video_requests;
DROP FUNCTION IF EXISTS reeltrace_zero_cost_when_unbilled();
"""

# Revision 0005's function, with the budget check, the cost columns on insert and
# four more result columns (over_budget, budget_spent, budget_limit, budget_resets).
CREATE_FUNCTION = r"""
CREATE FUNCTION reeltrace_create_request(w jsonb, rate_limit integer, rate_window_seconds integer)
RETURNS TABLE (id uuid, correlation_id text, status request_status, created_at timestamptz,
               created boolean, limited boolean, window_used bigint, window_oldest timestamptz,
               over_budget text, budget_spent numeric, budget_limit numeric, budget_resets timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    rid uuid := (w->>'id')::uuid;
    at timestamptz := (w->>'created_at')::timestamptz;
    used bigint := 0;
    oldest timestamptz;
    ev jsonb := w->'event';
    budget jsonb := w->'budget';
    estimate numeric := coalesce((w->>'estimated_cost_usd')::numeric, 0);
    day_start timestamptz := date_trunc('day', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    month_start timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    g_daily numeric;
    g_monthly numeric;
    spent_day numeric;
    spent_month numeric;
    check_scope text;
    check_limit numeric;
    check_spent numeric;
BEGIN
    -- A repeated UUID returns the existing request and never counts against the limits.
    RETURN QUERY SELECT v.id, v.correlation_id, v.status, v.created_at, false, false, 0::bigint,
                        NULL::timestamptz, NULL::text, NULL::numeric, NULL::numeric, NULL::timestamptz
                 FROM video_requests v WHERE v.id = rid;
    IF FOUND THEN
        RETURN;
    END IF;
    IF rate_limit IS NOT NULL OR budget->>'user_daily' IS NOT NULL OR budget->>'user_monthly' IS NOT NULL THEN
        -- Serialise this user's submissions across every API replica; the counts
        -- below are new statements, so they see every submission committed before.
        PERFORM pg_advisory_xact_lock(hashtextextended('rate:' || (w->>'user_id'), 0));
    END IF;
    IF rate_limit IS NOT NULL THEN
        SELECT count(*), min(v.created_at) INTO used, oldest
        FROM video_requests v
        WHERE v.user_id = w->>'user_id' AND v.created_at > at - make_interval(secs => rate_window_seconds);
        IF used >= rate_limit THEN
            RETURN QUERY SELECT rid, NULL::text, NULL::request_status, NULL::timestamptz, false, true, used,
                                oldest, NULL::text, NULL::numeric, NULL::numeric, NULL::timestamptz;
            RETURN;
        END IF;
    END IF;
    IF budget->>'user_daily' IS NOT NULL OR budget->>'user_monthly' IS NOT NULL THEN
        -- Spent (what ended requests cost) plus reserved (what unfinished ones are
        -- expected to cost, or have cost so far if more), for the user, then the guild.
        -- Without a limit of a kind, nothing is summed.
        SELECT coalesce(sum(x) FILTER (WHERE v.created_at >= day_start), 0), coalesce(sum(x), 0)
        INTO spent_day, spent_month
        FROM video_requests v,
             LATERAL (SELECT CASE WHEN v.status IN ('completed', 'failed', 'timeout')
                                  THEN coalesce(v.cost_usd, v.estimated_cost_usd, 0)
                                  ELSE greatest(coalesce(v.cost_usd, 0), coalesce(v.estimated_cost_usd, 0))
                             END AS x) c
        WHERE v.user_id = w->>'user_id' AND v.created_at >= month_start;
        FOR check_scope, check_limit, check_spent IN
            SELECT * FROM (VALUES ('user_daily', (budget->>'user_daily')::numeric, spent_day),
                                  ('user_monthly', (budget->>'user_monthly')::numeric, spent_month)) AS t
        LOOP
            IF check_limit IS NOT NULL AND (check_spent + estimate > check_limit OR check_spent >= check_limit) THEN
                RETURN QUERY SELECT rid, NULL::text, NULL::request_status, NULL::timestamptz, false, false, used,
                                    oldest, check_scope, check_spent, check_limit,
                                    CASE WHEN check_scope LIKE '%daily' THEN day_start + interval '1 day'
                                         ELSE month_start + interval '1 month' END;
                RETURN;
            END IF;
        END LOOP;
    END IF;
    IF budget IS NOT NULL AND w->>'guild_id' IS NOT NULL THEN
        SELECT b.daily_usd, b.monthly_usd INTO g_daily, g_monthly
        FROM guild_budgets b WHERE b.guild_id = w->>'guild_id';
        g_daily := coalesce(g_daily, (budget->>'guild_daily')::numeric);
        g_monthly := coalesce(g_monthly, (budget->>'guild_monthly')::numeric);
        IF g_daily IS NOT NULL OR g_monthly IS NOT NULL THEN
            PERFORM pg_advisory_xact_lock(hashtextextended('budget:guild:' || (w->>'guild_id'), 0));
            SELECT coalesce(sum(x) FILTER (WHERE v.created_at >= day_start), 0), coalesce(sum(x), 0)
            INTO spent_day, spent_month
            FROM video_requests v,
                 LATERAL (SELECT CASE WHEN v.status IN ('completed', 'failed', 'timeout')
                                      THEN coalesce(v.cost_usd, v.estimated_cost_usd, 0)
                                      ELSE greatest(coalesce(v.cost_usd, 0), coalesce(v.estimated_cost_usd, 0))
                                 END AS x) c
            WHERE v.guild_id = w->>'guild_id' AND v.created_at >= month_start;
            FOR check_scope, check_limit, check_spent IN
                SELECT * FROM (VALUES
                    ('guild_daily', g_daily, spent_day), ('guild_monthly', g_monthly, spent_month)) AS t
            LOOP
                IF check_limit IS NOT NULL
                   AND (check_spent + estimate > check_limit OR check_spent >= check_limit) THEN
                    RETURN QUERY SELECT rid, NULL::text, NULL::request_status, NULL::timestamptz, false, false,
                                        used, oldest, check_scope, check_spent, check_limit,
                                        CASE WHEN check_scope LIKE '%daily' THEN day_start + interval '1 day'
                                             ELSE month_start + interval '1 month' END;
                    RETURN;
                END IF;
            END LOOP;
        END IF;
    END IF;
    INSERT INTO video_requests AS v (id, correlation_id, pipeline, user_id, guild_id, channel_id, prompt,
                                     duration_seconds, aspect_ratio, resolution, generate_audio, parameters,
                                     trace_id, traceparent, created_at, updated_at, lease_owner, lease_expires_at,
                                     estimated_cost_usd, usd_per_second, price_version)
    VALUES (rid, w->>'correlation_id', w->>'pipeline', w->>'user_id', w->>'guild_id', w->>'channel_id',
            w->>'prompt', (w->>'duration_seconds')::smallint, w->>'aspect_ratio', w->>'resolution',
            (w->>'generate_audio')::boolean, coalesce(w->'parameters', '{}'::jsonb), w->>'trace_id',
            w->>'traceparent', at, at, w->>'lease_owner', (w->>'lease_expires_at')::timestamptz,
            (w->>'estimated_cost_usd')::numeric, (w->>'usd_per_second')::numeric, w->>'price_version')
    ON CONFLICT ON CONSTRAINT pk_video_requests DO NOTHING;
    IF NOT FOUND THEN
        -- A concurrent create of the same UUID won the race: return that one.
        RETURN QUERY SELECT v.id, v.correlation_id, v.status, v.created_at, false, false, 0::bigint,
                            NULL::timestamptz, NULL::text, NULL::numeric, NULL::numeric, NULL::timestamptz
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
    RETURN QUERY SELECT rid, w->>'correlation_id', 'pending'::request_status, at, true, false, used, oldest,
                        NULL::text, NULL::numeric, NULL::numeric, NULL::timestamptz;
END
$$;
"""

# Revision 0005's function, as it was: what the downgrade puts back.
PREVIOUS_FUNCTION = r"""
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

DROP_FUNCTION = "DROP FUNCTION reeltrace_create_request(jsonb, integer, integer)"


def upgrade() -> None:
    op.add_column("video_requests", sa.Column("cost_usd", USD, nullable=True))
    op.add_column(
        "video_requests",
        sa.Column("billable_seconds", sa.Numeric(12, 3), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("video_requests", sa.Column("estimated_cost_usd", USD, nullable=True))
    op.add_column("video_requests", sa.Column("usd_per_second", USD, nullable=True))
    op.add_column("video_requests", sa.Column("price_version", sa.Text(), nullable=True))
    op.create_table(
        "guild_budgets",
        sa.Column("guild_id", sa.Text(), nullable=False),
        sa.Column("daily_usd", USD, nullable=True),
        sa.Column("monthly_usd", USD, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint(
            "daily_usd >= 0 AND monthly_usd >= 0", name=op.f("ck_guild_budgets_limits_nonnegative")
        ),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_guild_budgets")),
    )
    op.execute(ZERO_COST_TRIGGER)
    op.execute(DROP_FUNCTION)
    op.execute(CREATE_FUNCTION)


def downgrade() -> None:
    op.execute(DROP_FUNCTION)
    op.execute(PREVIOUS_FUNCTION)
    op.execute(DROP_ZERO_COST_TRIGGER)
    op.drop_table("guild_budgets")
    for column in ("price_version", "usd_per_second", "estimated_cost_usd", "billable_seconds", "cost_usd"):
        op.drop_column("video_requests", column)
