-- Every PostgreSQL function and trigger of the schema, as of revision 0013.
--
-- This is the one place their current bodies live. The migration of this revision
-- runs the whole file (CREATE OR REPLACE, triggers dropped and made again), so the
-- file and the database agree (tests/migrations checks it). A later migration that
-- changes a function or a trigger copies this file to its own revision's name,
-- changes the copy and runs it: this file then stays as revision 0013 ran it.

-- function reeltrace_check_status_transition
CREATE OR REPLACE FUNCTION public.reeltrace_check_status_transition()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'pending' THEN
            RAISE EXCEPTION 'Invalid status transition'
                USING ERRCODE = 'RT001', DETAIL = format('a request starts as pending, not %s', NEW.status);
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.status = OLD.status
       OR (OLD.status = 'pending' AND NEW.status = 'generating')
       OR (OLD.status = 'generating' AND NEW.status IN ('completed', 'failed', 'timeout')) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'Invalid status transition'
        USING ERRCODE = 'RT001', DETAIL = format('%s -> %s', OLD.status, NEW.status);
END
$function$;

-- function reeltrace_create_request
CREATE OR REPLACE FUNCTION public.reeltrace_create_request(w jsonb, rate_limit integer, rate_window_seconds integer)
 RETURNS TABLE(id uuid, correlation_id text, status request_status, created_at timestamp with time zone, created boolean, limited boolean, window_used bigint, window_oldest timestamp with time zone, over_budget text, budget_spent numeric, budget_limit numeric, budget_resets timestamp with time zone)
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function reeltrace_fill_status_times
CREATE OR REPLACE FUNCTION public.reeltrace_fill_status_times()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    IF NEW.status = 'generating' THEN
        NEW.started_at := coalesce(NEW.started_at, clock_timestamp());
    ELSIF NEW.status IN ('completed', 'failed', 'timeout') THEN
        NEW.completed_at := coalesce(NEW.completed_at, clock_timestamp());
        NEW.duration_ms := coalesce(
            NEW.duration_ms,
            floor(extract(epoch FROM (NEW.completed_at - coalesce(NEW.started_at, NEW.completed_at)))
                  * 1000)::bigint);
    END IF;
    RETURN NEW;
END
$function$;

-- function reeltrace_maintain_rollups
CREATE OR REPLACE FUNCTION public.reeltrace_maintain_rollups()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF OLD.status IN ('completed', 'failed', 'timeout') THEN
        PERFORM reeltrace_rollup_apply(OLD, -1);
    END IF;
    IF NEW.status IN ('completed', 'failed', 'timeout') THEN
        PERFORM reeltrace_rollup_apply(NEW, 1);
    END IF;
    RETURN NULL;
END
$function$;

-- function reeltrace_record_tombstones
CREATE OR REPLACE FUNCTION public.reeltrace_record_tombstones()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    INSERT INTO request_tombstones (request_id, deleted_at, reason)
    SELECT d.id, clock_timestamp(),
           coalesce(nullif(current_setting('reeltrace.delete_reason', true), ''), 'manual')
    FROM deleted_requests d
    ON CONFLICT (request_id) DO UPDATE
        SET deleted_at = EXCLUDED.deleted_at, reason = EXCLUDED.reason;
    RETURN NULL;
END
$function$;

-- function reeltrace_rollup_apply
CREATE OR REPLACE FUNCTION public.reeltrace_rollup_apply(r video_requests, sign integer)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    INSERT INTO request_rollups AS t (bucket_seconds, bucket_start, pipeline, status,
                                      requests, timed_requests, duration_sum_ms, cost_usd_sum)
    SELECT w.s, date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
           r.pipeline, r.status, sign, CASE WHEN r.duration_ms IS NULL THEN 0 ELSE sign END,
           sign * coalesce(r.duration_ms, 0), sign * coalesce(r.cost_usd, 0)
    FROM (VALUES (60), (3600)) AS w(s)
    ON CONFLICT (bucket_seconds, bucket_start, pipeline, status) DO UPDATE
        SET requests = t.requests + EXCLUDED.requests,
            timed_requests = t.timed_requests + EXCLUDED.timed_requests,
            duration_sum_ms = t.duration_sum_ms + EXCLUDED.duration_sum_ms,
            cost_usd_sum = t.cost_usd_sum + EXCLUDED.cost_usd_sum;
    IF r.duration_ms IS NOT NULL THEN
        INSERT INTO request_rollup_sketches AS t (bucket_seconds, status, bucket_start, pipeline,
                                                  sketch_index, requests)
        SELECT w.s, r.status,
               date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
               r.pipeline, reeltrace_sketch_index(r.duration_ms), sign
        FROM (VALUES (60), (3600)) AS w(s)
        ON CONFLICT (bucket_seconds, status, bucket_start, pipeline, sketch_index) DO UPDATE
            SET requests = t.requests + EXCLUDED.requests;
    END IF;
    INSERT INTO stage_rollups AS t (bucket_seconds, bucket_start, pipeline, stage_name, stages, duration_sum_ms)
    SELECT w.s, date_bin(make_interval(secs => w.s), r.created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
           r.pipeline, s.stage_name, sign * count(*), sign * sum(s.duration_ms)
    FROM request_stages s CROSS JOIN (VALUES (60), (3600)) AS w(s)
    WHERE s.request_id = r.id AND s.status = 'completed' AND s.duration_ms IS NOT NULL
    GROUP BY w.s, s.stage_name
    ON CONFLICT (bucket_seconds, bucket_start, pipeline, stage_name) DO UPDATE
        SET stages = t.stages + EXCLUDED.stages,
            duration_sum_ms = t.duration_sum_ms + EXCLUDED.duration_sum_ms;
END
$function$;

-- function reeltrace_set_stage_request_created_at
CREATE OR REPLACE FUNCTION public.reeltrace_set_stage_request_created_at()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function reeltrace_set_updated_at
CREATE OR REPLACE FUNCTION public.reeltrace_set_updated_at()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$function$;

-- function reeltrace_sketch_index
CREATE OR REPLACE FUNCTION public.reeltrace_sketch_index(duration_ms bigint)
 RETURNS smallint
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT CASE WHEN duration_ms IS NULL THEN NULL
                WHEN duration_ms <= 0 THEN -32768
                ELSE ceil(ln(duration_ms::double precision) / ln(1.01 / 0.99))::smallint END
$function$;

-- function reeltrace_sketch_quantiles
CREATE OR REPLACE FUNCTION public.reeltrace_sketch_quantiles(indexes smallint[], counts bigint[], qs double precision[])
 RETURNS double precision[]
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
DECLARE
    total bigint := 0;
    result double precision[] := '{}';
    q double precision;
    rank double precision;
    lo bigint;
    hi bigint;
    cum bigint;
    v_lo double precision;
    v_hi double precision;
BEGIN
    IF indexes IS NULL THEN
        RETURN NULL;
    END IF;
    FOR i IN 1 .. coalesce(array_length(counts, 1), 0) LOOP
        total := total + counts[i];
    END LOOP;
    IF total <= 0 THEN
        RETURN NULL;
    END IF;
    FOREACH q IN ARRAY qs LOOP
        rank := q * (total - 1);
        lo := floor(rank);
        hi := ceil(rank);
        cum := 0;
        v_lo := NULL;
        v_hi := NULL;
        FOR i IN 1 .. array_length(indexes, 1) LOOP
            cum := cum + counts[i];
            IF v_lo IS NULL AND cum > lo THEN
                v_lo := reeltrace_sketch_value(indexes[i]);
            END IF;
            IF cum > hi THEN
                v_hi := reeltrace_sketch_value(indexes[i]);
                EXIT;
            END IF;
        END LOOP;
        result := result || (v_lo + (rank - lo) * (v_hi - v_lo));
    END LOOP;
    RETURN result;
END
$function$;

-- function reeltrace_sketch_value
CREATE OR REPLACE FUNCTION public.reeltrace_sketch_value(sketch_index smallint)
 RETURNS double precision
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT CASE WHEN sketch_index = -32768 THEN 0::double precision
                ELSE 2 * power(1.01 / 0.99, sketch_index)::double precision / (1.01 / 0.99 + 1) END
$function$;

-- function reeltrace_zero_cost_when_unbilled
CREATE OR REPLACE FUNCTION public.reeltrace_zero_cost_when_unbilled()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function reeltrace_notify_events
CREATE OR REPLACE FUNCTION public.reeltrace_notify_events()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    -- One notification per statement, however many events it wrote: a tracking write
    -- inserts its events in one statement. Listeners read the rows themselves; the
    -- payload names the request when the statement wrote for only one.
    PERFORM pg_notify('reeltrace_events',
                      json_build_object('id', max(id),
                                        'request_id', CASE WHEN count(DISTINCT request_id) = 1
                                                           THEN min(request_id::text) END,
                                        'events', count(*))::text)
    FROM new_events
    HAVING count(*) > 0;
    RETURN NULL;
END
$function$;

-- function reeltrace_delete_request_events
CREATE OR REPLACE FUNCTION public.reeltrace_delete_request_events()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    -- A request's events go with it. request_events has no foreign key: every event is
    -- written in the statement that locks its request's row, and a key checked per
    -- inserted event doubled the statements PostgreSQL ran for each tracking write.
    DELETE FROM request_events e USING deleted_requests d WHERE e.request_id = d.id;
    RETURN NULL;
END
$function$;

-- trigger request_events_notify on request_events
DROP TRIGGER IF EXISTS request_events_notify ON request_events;
CREATE TRIGGER request_events_notify AFTER INSERT ON public.request_events REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION reeltrace_notify_events();

-- trigger request_stages_inserted_at on request_stages
DROP TRIGGER IF EXISTS request_stages_inserted_at ON request_stages;
CREATE TRIGGER request_stages_inserted_at BEFORE INSERT ON public.request_stages FOR EACH ROW EXECUTE FUNCTION reeltrace_set_updated_at();

-- trigger request_stages_request_created_at on request_stages
DROP TRIGGER IF EXISTS request_stages_request_created_at ON request_stages;
CREATE TRIGGER request_stages_request_created_at BEFORE INSERT ON public.request_stages FOR EACH ROW WHEN ((new.request_created_at IS NULL)) EXECUTE FUNCTION reeltrace_set_stage_request_created_at();

-- trigger request_stages_updated_at on request_stages
DROP TRIGGER IF EXISTS request_stages_updated_at ON request_stages;
CREATE TRIGGER request_stages_updated_at BEFORE UPDATE ON public.request_stages FOR EACH ROW EXECUTE FUNCTION reeltrace_set_updated_at();

-- trigger video_requests_inserted_at on video_requests
DROP TRIGGER IF EXISTS video_requests_inserted_at ON video_requests;
CREATE TRIGGER video_requests_inserted_at BEFORE INSERT ON public.video_requests FOR EACH ROW EXECUTE FUNCTION reeltrace_set_updated_at();

-- trigger video_requests_rollups on video_requests
DROP TRIGGER IF EXISTS video_requests_rollups ON video_requests;
CREATE TRIGGER video_requests_rollups AFTER UPDATE ON public.video_requests FOR EACH ROW WHEN ((((old.status = ANY (ARRAY['completed'::request_status, 'failed'::request_status, 'timeout'::request_status])) OR (new.status = ANY (ARRAY['completed'::request_status, 'failed'::request_status, 'timeout'::request_status]))) AND (((((old.status IS DISTINCT FROM new.status) OR (old.pipeline IS DISTINCT FROM new.pipeline)) OR (old.created_at IS DISTINCT FROM new.created_at)) OR (old.duration_ms IS DISTINCT FROM new.duration_ms)) OR (old.cost_usd IS DISTINCT FROM new.cost_usd)))) EXECUTE FUNCTION reeltrace_maintain_rollups();

-- trigger video_requests_status_guard on video_requests
DROP TRIGGER IF EXISTS video_requests_status_guard ON video_requests;
CREATE TRIGGER video_requests_status_guard BEFORE INSERT OR UPDATE OF status ON public.video_requests FOR EACH ROW EXECUTE FUNCTION reeltrace_check_status_transition();

-- trigger video_requests_status_times on video_requests
DROP TRIGGER IF EXISTS video_requests_status_times ON video_requests;
CREATE TRIGGER video_requests_status_times BEFORE UPDATE OF status ON public.video_requests FOR EACH ROW EXECUTE FUNCTION reeltrace_fill_status_times();

-- trigger video_requests_tombstones on video_requests
DROP TRIGGER IF EXISTS video_requests_tombstones ON video_requests;
CREATE TRIGGER video_requests_tombstones AFTER DELETE ON public.video_requests REFERENCING OLD TABLE AS deleted_requests FOR EACH STATEMENT EXECUTE FUNCTION reeltrace_record_tombstones();

-- trigger video_requests_updated_at on video_requests
DROP TRIGGER IF EXISTS video_requests_updated_at ON video_requests;
CREATE TRIGGER video_requests_updated_at BEFORE UPDATE ON public.video_requests FOR EACH ROW WHEN (((to_jsonb(old.*) - '{lease_owner,lease_expires_at,claims,updated_at,claim_generation}'::text[]) IS DISTINCT FROM (to_jsonb(new.*) - '{lease_owner,lease_expires_at,claims,updated_at,claim_generation}'::text[]))) EXECUTE FUNCTION reeltrace_set_updated_at();

-- trigger video_requests_zero_cost on video_requests
DROP TRIGGER IF EXISTS video_requests_zero_cost ON video_requests;
CREATE TRIGGER video_requests_zero_cost BEFORE UPDATE OF status ON public.video_requests FOR EACH ROW WHEN (((new.status = ANY (ARRAY['completed'::request_status, 'failed'::request_status, 'timeout'::request_status])) AND (old.status = ANY (ARRAY['pending'::request_status, 'generating'::request_status])))) EXECUTE FUNCTION reeltrace_zero_cost_when_unbilled();

-- trigger video_requests_delete_events on video_requests
DROP TRIGGER IF EXISTS video_requests_delete_events ON video_requests;
CREATE TRIGGER video_requests_delete_events AFTER DELETE ON public.video_requests REFERENCING OLD TABLE AS deleted_requests FOR EACH STATEMENT EXECUTE FUNCTION reeltrace_delete_request_events();
