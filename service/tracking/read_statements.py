"""Builders of the tracking reads composed per call; their statements are in `sql/reads.sql`."""

from __future__ import annotations

from functools import lru_cache

from service.db.namedsql import NamedSql

READS = NamedSql("service.tracking", "sql/reads.sql")

_FILTERS = {
    "user_id": "list_requests_and_user_id",
    "guild_id": "list_requests_and_guild_id",
    "pipeline": "list_requests_and_pipeline",
    "status": "list_requests_and_status",
    "since": "list_requests_and_since",
    "cursor": "list_requests_and_cursor",
}


@lru_cache(maxsize=64)
def list_requests(filters: frozenset[str]) -> str:
    """Requests newest first, restricted by the named filters (keys of _FILTERS)."""
    where = "".join(f"\n{READS[_FILTERS[f]]}" for f in sorted(filters))
    return f"{READS['list_requests_head']}{where}\n{READS['list_requests_tail']}"


# One pass over the window through the covering (created_at) INCLUDE (status,
# duration_ms) index; active requests come from the partial index on open statuses.
# The window is a literal, not a parameter: with a parameter, a prepared statement's
# generic plan guesses a third of the table and scans it all.
@lru_cache(maxsize=8)
def dashboard(window_hours: int) -> str:
    return f"""
SELECT now() - make_interval(hours => {int(window_hours)}) AS since,
       count(*) AS total,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'generating') AS generating,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'timeout') AS timeout,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)
           FILTER (WHERE status = 'completed') AS percentiles,
       avg(duration_ms) FILTER (WHERE status = 'completed')::double precision AS avg_ms,
       (SELECT count(*) FROM video_requests WHERE status IN ('pending', 'generating')) AS active,
       coalesce(sum(cost_usd), 0) AS spend_usd
FROM video_requests
WHERE created_at >= now() - make_interval(hours => {int(window_hours)})
"""
