"""Parity: DuckDB over the snapshot and SQL over PostgreSQL give the same figures on the same data."""

from __future__ import annotations

from typing import Any

import pytest

from analytics import queries
from analytics.reader import open_snapshot
from service.pipeline.definitions import PIPELINES
from tests.analytics.conftest import Exported, pg_rows

STATUS_COUNTS = ", ".join(
    f"count(*) FILTER (WHERE status = '{s}')"
    for s in ("pending", "generating", "completed", "failed", "timeout")
)
NORMALISED = "btrim(regexp_replace(lower(prompt), '\\s+', ' ', 'g'))"


def close(a: Any, b: Any) -> bool:
    """Equal, with floats compared to 1e-9 relative (DuckDB and PostgreSQL sum in different orders)."""
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("bucket", ["day", "week", "month"])
def test_guild_counts_and_average_match_postgres(exported: Exported, bucket: str) -> None:
    """Per bucket, counts by status and the average completed duration equal PostgreSQL's."""
    for guild in ("guild_0", "guild_3"):
        with open_snapshot(exported.root) as snap:
            stats = queries.guild_stats(snap, guild, bucket)
        duck = [
            (b.bucket_start, b.total, *b.by_status.values(), b.avg_completed_duration_ms)
            for b in stats.buckets
        ]
        pg = pg_rows(
            exported.dsn,
            f"SELECT date_trunc(%s, created_at)::date, count(*), {STATUS_COUNTS},"
            " (avg(duration_ms) FILTER (WHERE status = 'completed'))::float8"
            " FROM video_requests WHERE guild_id = %s GROUP BY 1 ORDER BY 1",
            (bucket, guild),
        )
        assert len(duck) > 1
        assert close(duck, pg)


@pytest.mark.parametrize("bucket", ["week", "month"])
def test_guild_top_prompts_match_postgres(exported: Exported, bucket: str) -> None:
    """The top-10 prompts per bucket, normalised for case and whitespace, equal PostgreSQL's."""
    with open_snapshot(exported.root) as snap:
        stats = queries.guild_stats(snap, "guild_1", bucket)
    duck = [(b.bucket_start, p.prompt, p.requests) for b in stats.buckets for p in b.top_prompts]
    pg = pg_rows(
        exported.dsn,
        f"""SELECT bucket_start, prompt, n FROM (
              SELECT bucket_start, prompt, n,
                     row_number() OVER (PARTITION BY bucket_start ORDER BY n DESC, prompt COLLATE "C") AS rank
              FROM (SELECT date_trunc(%s, created_at)::date AS bucket_start, {NORMALISED} AS prompt,
                           count(*) AS n
                    FROM video_requests WHERE guild_id = 'guild_1' GROUP BY 1, 2) AS counted) AS ranked
            WHERE rank <= 10 ORDER BY bucket_start, n DESC, prompt COLLATE "C" """,
        (bucket,),
    )
    assert duck == pg
    assert all(len(b.top_prompts) <= 10 for b in stats.buckets)


def test_prompts_are_normalised_for_case_and_whitespace(exported: Exported) -> None:
    """Prompts differing only in case and spacing count as one."""
    with open_snapshot(exported.root) as snap:
        top = queries.top_prompts(snap, top=1000).dicts()
    prompts = {row["prompt"] for row in top}
    assert "sunset over the sea" in prompts
    assert not any(p != p.strip() or "  " in p or p != p.lower() for p in prompts)


def test_global_percentiles_and_failure_rate_match_postgres(exported: Exported) -> None:
    """Exact P50/P95/P99 and the failure rate, overall, per pipeline and per aspect ratio, equal PostgreSQL's."""
    with open_snapshot(exported.root) as snap:
        duck = queries.global_latency(snap).rows
    pg = pg_rows(
        exported.dsn,
        """SELECT CASE WHEN grouping(pipeline) = 0 THEN 'pipeline'
                       WHEN grouping(aspect_ratio) = 0 THEN 'aspect_ratio' ELSE 'all' END AS dimension,
                  coalesce(CASE WHEN grouping(pipeline) = 0 THEN pipeline END,
                           CASE WHEN grouping(aspect_ratio) = 0 THEN aspect_ratio END, 'all') AS value,
                  count(*), count(*) FILTER (WHERE status = 'completed'),
                  count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'timeout'),
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE status = 'completed'),
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE status = 'completed'),
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE status = 'completed'),
                  (avg(duration_ms) FILTER (WHERE status = 'completed'))::float8,
                  (100.0 * count(*) FILTER (WHERE status IN ('failed', 'timeout'))
                   / nullif(count(*) FILTER (WHERE status IN ('completed', 'failed', 'timeout')), 0))::float8
           FROM video_requests
           GROUP BY GROUPING SETS ((), (pipeline), (aspect_ratio))""",
    )
    order = {"all": 0, "pipeline": 1, "aspect_ratio": 2}
    pg.sort(key=lambda r: (order[r[0]], r[1]))
    assert [r[:2] for r in duck] == [
        ("all", "all"),
        ("pipeline", "lesson"),
        ("pipeline", "veo"),
        ("aspect_ratio", "16:9"),
        ("aspect_ratio", "9:16"),
    ]
    assert close(duck, pg)


def test_stage_durations_and_failure_shares_match_postgres(exported: Exported) -> None:
    """Per stage: runs, outcomes, average and percentile durations, failure rate and share equal PostgreSQL's."""
    with open_snapshot(exported.root) as snap:
        duck = queries.stage_stats(snap).rows
    pg = pg_rows(
        exported.dsn,
        """WITH per_stage AS (
             SELECT r.pipeline, s.stage_name, min(s.stage_order) AS stage_order,
                    count(*) FILTER (WHERE s.status NOT IN ('pending', 'skipped')) AS runs,
                    count(*) FILTER (WHERE s.status = 'completed') AS completed,
                    count(*) FILTER (WHERE s.status = 'failed') AS failed,
                    (avg(s.duration_ms) FILTER (WHERE s.status = 'completed'))::float8 AS avg_ms,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_ms)
                        FILTER (WHERE s.status = 'completed') AS p50,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY s.duration_ms)
                        FILTER (WHERE s.status = 'completed') AS p95
             FROM request_stages s JOIN video_requests r ON r.id = s.request_id GROUP BY 1, 2)
           SELECT pipeline, stage_name, stage_order, runs, completed, failed, avg_ms, p50, p95,
                  (100.0 * failed / nullif(completed + failed, 0))::float8,
                  (100.0 * failed / nullif(sum(failed) OVER (PARTITION BY pipeline), 0))::float8
           FROM per_stage ORDER BY pipeline, stage_order""",
    )
    assert len(duck) == 10
    assert close(duck, pg)


def test_retry_economics_match_postgres(exported: Exported) -> None:
    """Attempts per success per stage, and the time lost to failed and timed-out generations, equal PostgreSQL's."""
    with open_snapshot(exported.root) as snap:
        economics = queries.retry_economics(snap)
    attempts = pg_rows(
        exported.dsn,
        """SELECT stage_name, sum(attempts), sum(greatest(attempts - 1, 0)),
                  count(*) FILTER (WHERE status = 'completed'),
                  (sum(attempts)::float8 / nullif(count(*) FILTER (WHERE status = 'completed'), 0))
           FROM request_stages WHERE attempts > 0 GROUP BY 1 ORDER BY max(stage_order), stage_name COLLATE "C" """,
    )
    wasted = pg_rows(
        exported.dsn,
        """SELECT pipeline, status::text, requests, hours, avg_seconds, share FROM (
             SELECT pipeline, status, count(*) AS requests, sum(duration_ms) / 3600000.0::float8 AS hours,
                    avg(duration_ms)::float8 / 1000.0 AS avg_seconds,
                    (100.0 * sum(duration_ms) / sum(sum(duration_ms)) OVER (PARTITION BY pipeline))::float8
                        AS share
             FROM video_requests WHERE status IN ('completed', 'failed', 'timeout') GROUP BY 1, 2) AS t
           WHERE status IN ('failed', 'timeout') ORDER BY 1, 2""",
    )
    assert close(economics.attempts.rows, attempts)
    # Both pipelines' stages together, in the order a request goes through them.
    order = [stage.name for stage in PIPELINES["lesson"].stages]
    shown = [r[0] for r in economics.attempts.rows]
    assert shown == sorted(shown, key=order.index)
    assert close(economics.wasted.rows, wasted)
    assert {r[1] for r in economics.wasted.rows} == {"failed", "timeout"}


def test_user_activity_matches_postgres(exported: Exported) -> None:
    """Requests per user, the busiest users and the distribution's percentiles equal PostgreSQL's."""
    with open_snapshot(exported.root) as snap:
        activity = queries.user_activity(snap, top=5)
    top = pg_rows(
        exported.dsn,
        """SELECT user_id, count(*), count(*) FILTER (WHERE status = 'completed'),
                  count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'timeout'),
                  count(DISTINCT guild_id),
                  min(created_at), max(created_at)
           FROM video_requests GROUP BY 1 ORDER BY 2 DESC, user_id COLLATE "C" LIMIT 5""",
    )
    distribution = pg_rows(
        exported.dsn,
        """SELECT count(*), sum(n), avg(n)::float8,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY n), percentile_cont(0.9) WITHIN GROUP (ORDER BY n),
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY n), max(n)
           FROM (SELECT user_id, count(*) AS n FROM video_requests GROUP BY 1) AS per_user""",
    )
    assert close(activity.top.rows, top)
    assert close(activity.distribution.rows, distribution)
    assert sum(r[1] for r in activity.histogram.rows) == distribution[0][0]
    assert sum(r[2] for r in activity.histogram.rows) == exported.generated.requests
