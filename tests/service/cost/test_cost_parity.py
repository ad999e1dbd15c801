"""Cost parity: PostgreSQL, /metrics, the snapshot, `stats cost` and guild stats give one figure."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest

from analytics import queries
from analytics.export import export_snapshot
from analytics.reader import open_snapshot
from service.db.urls import libpq_dsn
from service.runtime import Runtime
from service.settings import Settings
from tests.analytics.conftest import pg_rows
from tests.service.api.conftest import Headers, body
from tests.service.cli.conftest import Cli
from tests.support.backends import failing_once_backends
from tests.support.workers import run_to_end

pytestmark = pytest.mark.slow

# (guild, user, duration, resolution, audio): prices differ by tier, and the first
# generation operation to finish fails after running, so its request is billed twice.
MIX = [
    ("g-a", "u-1", 8, "720p", False),
    ("g-a", "u-2", 4, "1080p", True),
    ("g-b", "u-1", 6, "1080p", False),
    ("g-b", "u-3", 8, "720p", True),
    ("g-c", "u-2", 4, "720p", False),
    (None, "u-4", 6, "720p", True),
]


def scrape(text: str, name: str) -> Decimal:
    """The sum of every sample of a counter family in a /metrics exposition."""
    total = Decimal(0)
    for line in text.splitlines():
        if line.startswith(name + "{"):
            total += Decimal(line.rsplit(" ", 1)[1])
    return total


async def test_cost_figures_agree_everywhere(
    client: httpx.AsyncClient,
    admin: Headers,
    runtime: Runtime,
    settings: Settings,
    cli: Cli,
) -> None:
    """Total, per-guild, per-user, per-model and per-day cost agree across every place it is shown."""
    before = (await client.get("/metrics")).text
    ids = []
    for guild, user, duration, resolution, audio in MIX:
        fields = {"guild_id": guild, "user_id": user, "duration_seconds": duration}
        response = await client.post(
            "/api/v1/requests",
            json=body(**fields, resolution=resolution, generate_audio=audio),
            headers=admin,
        )
        assert response.status_code == 202, response.text
        ids.append(uuid.UUID(response.json()["id"]))
    await run_to_end(runtime, ids, backends=failing_once_backends(settings))
    after = (await client.get("/metrics")).text

    dsn = libpq_dsn(runtime.database_url)
    [(pg_cost, pg_seconds)] = pg_rows(dsn, "SELECT sum(cost_usd), sum(billable_seconds) FROM video_requests")
    metric_cost = scrape(after, "reeltrace_generation_cost_usd_total") - scrape(
        before, "reeltrace_generation_cost_usd_total"
    )
    metric_seconds = scrape(after, "reeltrace_generation_billable_seconds_total") - scrape(
        before, "reeltrace_generation_billable_seconds_total"
    )
    root = runtime.settings.snapshot_dir  # where the API reads guild stats from
    export_snapshot(dsn, root)
    with open_snapshot(root) as snap:
        by = {b: queries.cost_by(snap, b) for b in ("guild", "user", "model", "day")}
        guild_a = queries.guild_stats(snap, "g-a", "month")
    totals = {b: sum(rows.column("cost_usd"), Decimal(0)) for b, rows in by.items()}
    seconds = {b: sum(rows.column("billable_seconds"), Decimal(0)) for b, rows in by.items()}
    printed = cli.run("stats", "cost", "--by", "guild", "--snapshots", str(root))
    assert printed.returncode == 0, printed.stderr
    lines = [line.replace("┃", "│") for line in printed.stdout.splitlines()]
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if "│" in line]
    header = cells[0]
    cli_costs = {
        row[header.index("guild id")]: Decimal(row[header.index("cost usd")].replace(",", ""))
        for row in cells[1:]
    }
    pg_by_guild = dict(
        pg_rows(dsn, "SELECT coalesce(guild_id, '-'), sum(cost_usd) FROM video_requests GROUP BY 1")
    )

    print(  # noqa: T201 - the parity figures, for the record (pytest -s)
        f"\ncost parity: PostgreSQL {pg_cost} USD / {pg_seconds} s; /metrics {metric_cost} USD / {metric_seconds} s;"
        f" snapshot by guild/user/model/day {[str(t) for t in totals.values()]} USD;"
        f" stats cost --by guild {sum(cli_costs.values())} USD; per guild {pg_by_guild}"
    )
    # One request's generation (whichever ran first) was billed twice.
    assert pg_seconds - sum(m[2] for m in MIX) in {m[2] for m in MIX}
    assert metric_cost == pytest.approx(pg_cost, abs=Decimal("0.000001"))
    assert metric_seconds == pg_seconds
    assert set(totals.values()) == {pg_cost}
    assert set(seconds.values()) == {pg_seconds}
    assert (
        dict(zip(by["guild"].column("guild_id"), by["guild"].column("cost_usd"), strict=True)) == pg_by_guild
    )
    assert cli_costs == pg_by_guild
    assert sum(b.cost_usd for b in guild_a.buckets) == pg_by_guild["g-a"]
    api = await client.get("/api/v1/guilds/g-a/stats", params={"bucket": "month"}, headers=admin)
    assert api.status_code == 200, api.text
    assert sum(b["cost_usd"] for b in api.json()["buckets"]) == pytest.approx(float(pg_by_guild["g-a"]))
