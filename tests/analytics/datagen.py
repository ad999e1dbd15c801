"""Realistic request, stage and event rows generated inside PostgreSQL.

The rows go in with `session_replication_role = replica`, which skips the status
guard (a generated row may start out completed), the updated_at trigger (the
generated updated_at is kept) and the foreign-key triggers (stages go in fast); so
stages carry their request's created_at themselves (the trigger that would copy it
in does not run either).
Everything runs as SQL on the server, so millions of rows take seconds, not hours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

# A few prompts that exercise CSV quoting and normalisation on every run.
TRICKY_PROMPTS = [
    'A cat, "surfing"\non a\twave',
    "  Sunset   OVER the sea ",
    "sunset over the sea",
    "Émile rides a café bicycle — très vite ☕",
    "back\\slash and 'quotes'",
    "",
]

_REQUESTS = """
INSERT INTO video_requests (
    id, correlation_id, pipeline, user_id, guild_id, channel_id, prompt, duration_seconds,
    aspect_ratio, resolution, generate_audio, parameters, status, current_stage,
    progress_percentage, operation_name, gcs_prefix, video_urls, error_message, error_stage,
    retry_count, trace_id, created_at, started_at, completed_at, duration_ms, updated_at)
SELECT id, correlation_id, pipeline, user_id, guild_id, channel_id, prompt, duration_seconds,
       aspect_ratio, resolution, generate_audio, parameters, status::request_status,
       CASE WHEN status = 'failed' THEN error_stage
            WHEN status = 'generating' THEN 'video_generation'
            WHEN status = 'pending' THEN NULL ELSE 'notification' END,
       CASE WHEN status = 'completed' THEN 100 WHEN status = 'pending' THEN 0 ELSE 50 END,
       CASE WHEN status <> 'pending' THEN 'projects/p/locations/us/operations/' || g END,
       CASE WHEN status <> 'pending' THEN 'requests/' || id END,
       CASE WHEN status = 'completed' THEN ARRAY['https://cdn.example/' || id || '/0.mp4']
            ELSE '{}'::text[] END,
       CASE WHEN status = 'failed' THEN 'Generation failed: quota exceeded'
            WHEN status = 'timeout' THEN 'Generation timed out after 5 minutes' END,
       CASE WHEN status = 'failed' THEN error_stage END,
       retry_count, md5(id::text),
       created_at, started_at,
       CASE WHEN status IN ('completed', 'failed', 'timeout') THEN started_at + duration_ms * interval '1 ms' END,
       CASE WHEN status IN ('completed', 'failed', 'timeout') THEN duration_ms END,
       CASE WHEN status IN ('completed', 'failed', 'timeout') THEN started_at + duration_ms * interval '1 ms'
            ELSE coalesce(started_at, created_at) END
FROM (
    SELECT g, {id_expr} AS id, r1, created_at,
           'vvd_' || lpad(floor(extract(epoch FROM created_at) * 1000)::bigint::text, 13, '0')
               || '_' || lpad(to_hex(g + %(offset)s), 8, '0') AS correlation_id,
           CASE WHEN r2 < 0.85 THEN 'veo' ELSE 'lesson' END AS pipeline,
           'user_' || floor(r3 * r3 * %(users)s)::int AS user_id,
           CASE WHEN r4 < 0.05 THEN NULL ELSE 'guild_' || floor(r4 * r4 * %(guilds)s)::int END AS guild_id,
           'chan_' || floor(r4 * 50)::int AS channel_id,
           CASE WHEN r5 < %(tricky)s THEN (%(tricky_prompts)s::text[])[1 + floor(r6 * %(n_tricky)s)::int]
                ELSE (CASE WHEN r6 < 0.2 THEN upper(p) WHEN r6 < 0.3 THEN '  ' || replace(p, ' ', '   ') ELSE p END)
           END AS prompt,
           (ARRAY[4, 6, 8])[1 + floor(r2 * 3)::int]::smallint AS duration_seconds,
           CASE WHEN r3 < 0.7 THEN '16:9' ELSE '9:16' END AS aspect_ratio,
           CASE WHEN r5 < 0.6 THEN '720p' ELSE '1080p' END AS resolution,
           r6 < 0.4 AS generate_audio,
           jsonb_build_object('seed', g, 'negative_prompt', 'blurry') AS parameters,
           CASE WHEN r1 < 0.80 THEN 'completed' WHEN r1 < 0.90 THEN 'failed' WHEN r1 < 0.93 THEN 'timeout'
                WHEN r1 < 0.96 THEN 'generating' ELSE 'pending' END AS status,
           CASE WHEN r7 < 0.7 THEN 'video_generation' WHEN r7 < 0.9 THEN 'video_processing'
                ELSE 'validation' END AS error_stage,
           CASE WHEN r7 < 0.8 THEN 0 WHEN r7 < 0.95 THEN 1 ELSE 2 END AS retry_count,
           CASE WHEN r1 < 0.96 THEN created_at + (r2 * 5000)::int * interval '1 ms' END AS started_at,
           CASE WHEN r1 >= 0.90 AND r1 < 0.93 THEN 300000 + (r7 * 1000)::int
                ELSE 20000 + (r5 * r5 * 160000)::int + (r7 * 1000)::int END AS duration_ms
    FROM (
        SELECT g, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5,
               random() AS r6, random() AS r7,
               %(t0)s::timestamptz + (g - 1) * (%(span)s::double precision / %(n)s) * interval '1 second'
                   AS created_at,
               'a ' || (ARRAY['cat', 'dog', 'robot', 'dragon', 'whale', 'fox', 'owl', 'astronaut'])[1 + g %% 8]
                   || ' ' || (ARRAY['surfing', 'dancing', 'flying', 'sleeping', 'cooking'])[1 + (g / 8) %% 5]
                   || ' in ' || (ARRAY['paris', 'space', 'the rain', 'a forest'])[1 + floor(random() ^ 3 * 4)::int]
                   AS p
        FROM generate_series(1, %(n)s) AS g
    ) AS raw
) AS req
"""

# One row per pipeline stage, consistent with the request's status: stages before the
# failing one completed, the failing one failed, later ones still pending.
_STAGES = """
INSERT INTO request_stages (request_id, stage_name, stage_order, status, started_at, completed_at,
                            duration_ms, attempts, max_retries, error_message, updated_at,
                            request_created_at)
SELECT r.id, st.name, st.ord, st_status::stage_status,
       CASE WHEN st_status <> 'pending' THEN r.started_at + (st.ord - 1) * interval '2 seconds' END,
       CASE WHEN st_status IN ('completed', 'failed')
            THEN r.started_at + (st.ord - 1) * interval '2 seconds' + st_ms * interval '1 ms' END,
       CASE WHEN st_status IN ('completed', 'failed') THEN st_ms END,
       CASE WHEN st_status = 'pending' THEN 0 WHEN st_status = 'failed' THEN st.max_retries + 1
            WHEN st.name = 'video_generation' THEN 1 + r.retry_count ELSE 1 END,
       st.max_retries,
       CASE WHEN st_status = 'failed' THEN r.error_message END,
       r.updated_at, r.created_at
FROM video_requests r
JOIN (VALUES ('veo', 'validation', 1, 0), ('veo', 'video_generation', 2, 3),
             ('veo', 'video_processing', 3, 3), ('veo', 'notification', 4, 3),
             ('lesson', 'validation', 1, 0), ('lesson', 'rag_retrieval', 2, 3),
             ('lesson', 'script_generation', 3, 3), ('lesson', 'video_generation', 4, 3),
             ('lesson', 'video_processing', 5, 3), ('lesson', 'notification', 6, 3))
     AS st(pipeline, name, ord, max_retries) ON st.pipeline = r.pipeline
CROSS JOIN LATERAL (
    SELECT CASE
             WHEN r.status = 'pending' THEN 'pending'
             WHEN r.status = 'completed' THEN 'completed'
             WHEN r.status = 'timeout' THEN
                 CASE WHEN st.name = 'video_generation' THEN 'failed'
                      WHEN st.name IN ('validation', 'rag_retrieval', 'script_generation') THEN 'completed'
                      ELSE 'pending' END
             WHEN r.status = 'failed' THEN
                 CASE WHEN st.name = r.error_stage THEN 'failed'
                      WHEN st.ord < (SELECT min(x.ord) FROM (VALUES
                               ('validation', 1), ('rag_retrieval', 2), ('script_generation', 3),
                               ('video_generation', 4), ('video_processing', 5), ('notification', 6))
                           AS x(name, ord) WHERE x.name = r.error_stage) THEN 'completed'
                      ELSE 'pending' END
             ELSE CASE WHEN st.name = 'video_generation' THEN 'in_progress'
                       WHEN st.name IN ('validation', 'rag_retrieval', 'script_generation') THEN 'completed'
                       ELSE 'pending' END
           END AS st_status,
           CASE st.name WHEN 'video_generation' THEN greatest(r.duration_ms - 4000, 1000)
                        WHEN 'validation' THEN 50 + (hashtext(r.id::text) & 255)
                        ELSE 1000 + (hashtext(st.name || r.id::text) & 4095) END AS st_ms
) AS s
WHERE r.created_at >= %(t0)s AND r.created_at < %(t1)s
"""

# The timeline of each request: created, started, each stage's start and end, the retries.
_EVENTS = """
INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message, data,
                            created_at, recorded_at, source_service, source_host)
SELECT gen_random_uuid(), request_id, event_type, severity::event_severity, stage_name, message,
       data, created_at, created_at, 'datagen', 'bench'
FROM (
    SELECT r.id AS request_id, 'request_created' AS event_type, 'info' AS severity, NULL AS stage_name,
           'Request created' AS message, jsonb_build_object('pipeline', r.pipeline) AS data,
           r.created_at
    FROM video_requests r WHERE r.created_at >= %(t0)s AND r.created_at < %(t1)s
    UNION ALL
    SELECT s.request_id, 'stage_started', 'info', s.stage_name, NULL, '{}'::jsonb, s.started_at
    FROM request_stages s JOIN video_requests r ON r.id = s.request_id
    WHERE s.started_at IS NOT NULL AND r.created_at >= %(t0)s AND r.created_at < %(t1)s
    UNION ALL
    SELECT s.request_id, CASE s.status WHEN 'failed' THEN 'stage_failed' ELSE 'stage_completed' END,
           CASE s.status WHEN 'failed' THEN 'error' ELSE 'info' END, s.stage_name, s.error_message,
           jsonb_build_object('duration_ms', s.duration_ms, 'attempts', s.attempts), s.completed_at
    FROM request_stages s JOIN video_requests r ON r.id = s.request_id
    WHERE s.completed_at IS NOT NULL AND r.created_at >= %(t0)s AND r.created_at < %(t1)s
    UNION ALL
    -- A finished generation is billed per output second (the model on the event, as the
    -- worker records it).
    SELECT s.request_id, 'cost_recorded', 'info', s.stage_name, 'generation billed',
           jsonb_build_object('model', 'veo-3.1-fast-generate-001', 'billable_seconds', r.duration_seconds,
                              'attempt_cost_usd', r.duration_seconds * 0.15),
           s.completed_at
    FROM request_stages s JOIN video_requests r ON r.id = s.request_id
    WHERE s.stage_name = 'video_generation' AND s.status = 'completed'
      AND r.created_at >= %(t0)s AND r.created_at < %(t1)s
    UNION ALL
    SELECT s.request_id, 'retry', 'warning', s.stage_name, 'retrying after a transient error',
           jsonb_build_object('attempt', a), s.started_at + a * interval '1 second'
    FROM request_stages s JOIN video_requests r ON r.id = s.request_id
    CROSS JOIN LATERAL generate_series(2, s.attempts) AS a
    WHERE s.attempts > 1 AND r.created_at >= %(t0)s AND r.created_at < %(t1)s
) AS e
"""


@dataclass(frozen=True)
class Generated:
    requests: int
    stages: int
    events: int


def generate(
    dsn: str,
    n: int,
    *,
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    span_days: float = 90.0,
    guilds: int = 40,
    users: int = 500,
    tricky_share: float = 0.02,
    offset: int = 0,
    stages: bool = True,
    events: bool = True,
    sequential_ids: bool = False,
) -> Generated:
    """Insert `n` requests created evenly over `span_days` from `start`, with stages and events.

    `sequential_ids` uses time-ordered UUIDs (uuidv7), which keep the primary-key index
    appends cheap for very large loads. `offset` keeps correlation IDs unique across calls.
    """
    span = span_days * 86400.0
    end = start.timestamp() + span
    t1 = datetime.fromtimestamp(end + 1, tz=UTC)
    id_expr = "uuidv7()" if sequential_ids else "gen_random_uuid()"
    params: dict[str, object] = {
        "n": n,
        "t0": start,
        "t1": t1,
        "span": span,
        "guilds": guilds,
        "users": users,
        "offset": offset,
        "tricky": tricky_share,
        "tricky_prompts": TRICKY_PROMPTS,
        "n_tricky": len(TRICKY_PROMPTS),
    }
    counts = [0, 0, 0]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET TimeZone = 'UTC'")
        counts[0] = conn.execute(_REQUESTS.replace("{id_expr}", id_expr).encode(), params).rowcount
        if stages:
            counts[1] = conn.execute(_STAGES.encode(), params).rowcount
        if events:
            counts[2] = conn.execute(_EVENTS.encode(), params).rowcount
    return Generated(*counts)


# Every index but the primary keys: (drop statement, statement that builds it again).
_SECONDARY_INDEXES = """
SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', t.relname, c.conname),
       format('ALTER TABLE %I ADD CONSTRAINT %I %s', t.relname, c.conname, pg_get_constraintdef(c.oid))
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
WHERE c.contype = 'u' AND t.relname IN ('video_requests', 'request_stages', 'request_events')
UNION ALL
SELECT format('DROP INDEX %I', i.relname), pg_get_indexdef(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relname IN ('video_requests', 'request_stages', 'request_events')
  AND NOT x.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
"""


def bulk_requests(
    dsn: str,
    total: int,
    *,
    chunk: int = 1_000_000,
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC),
    span_days: float = 365.0,
    detailed: int = 0,
    guilds: int = 40,
    users: int = 50_000,
    progress: Callable[[str], None] | None = None,
) -> Generated:
    """Load `total` requests in chunks, the first `detailed` of them with stages and events.

    The secondary indexes of the three tables are dropped for the load and built again
    afterwards (far faster than maintaining them row by row); the table is then
    vacuumed and analysed, as it would be in a settled production database.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        indexes = conn.execute(_SECONDARY_INDEXES).fetchall()
        for drop, _ in indexes:
            conn.execute(drop.encode())
    plan: list[tuple[int, bool]] = []
    for remaining, detail in ((min(detailed, total), True), (total - min(detailed, total), False)):
        while remaining > 0:
            plan.append((min(chunk, remaining), detail))
            remaining -= plan[-1][0]
    counts = [0, 0, 0]
    day = start
    for n, detail in plan:
        days = span_days * n / total
        got = generate(
            dsn,
            n,
            start=day,
            span_days=days,
            guilds=guilds,
            users=users,
            offset=counts[0],
            stages=detail,
            events=detail,
            sequential_ids=True,
        )
        day += timedelta(days=days)
        counts = [counts[0] + got.requests, counts[1] + got.stages, counts[2] + got.events]
        if progress is not None:
            progress(f"loaded {counts[0]:,} requests, {counts[1]:,} stages, {counts[2]:,} events")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _, create in indexes:
            conn.execute(create.encode())
        conn.execute("VACUUM (ANALYZE) video_requests, request_stages, request_events")
    return Generated(*counts)
