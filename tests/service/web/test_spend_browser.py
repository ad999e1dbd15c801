"""The "Spend today" card in chromium against a real server of its own (so its spend is ours alone)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.service.web.server import PageServer, page_server
from tests.support.browser import Watched, sign_in
from tests.support.pg import PgCluster


@pytest.fixture(scope="module")
def spend_server(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    """A healthy server on a fresh database: nothing spent until a test submits."""
    with page_server(pg_cluster, tmp_path_factory.mktemp("page-spend"), {}) as server:
        yield server


def dollars(amount: object) -> str:
    return f"${Decimal(str(amount)):,.2f}"


def test_spend_today_shows_a_completed_requests_cost(watched: Watched, spend_server: PageServer) -> None:
    """With the page open, a request that completes and is billed moves the card from $0.00 to its cost."""
    page = sign_in(watched, spend_server.url, spend_server.read_key)
    page.wait_for_selector("#live[data-state=live]")
    expect(page.locator("#card-spend")).to_have_text("$0.00")
    done = spend_server.wait_terminal(spend_server.submit(1, duration_seconds=8)["id"])
    assert done["status"] == "completed"
    assert done["cost_usd"] > 0  # the simulated backend bills its output seconds, as Vertex does
    expect(page.locator("#card-spend")).to_have_text(dollars(done["cost_usd"]))
    expect(page.locator("#card-spend-sub")).to_have_text(f"{dollars(done['cost_usd'])} · 24 h")
    assert watched.errors == []


def test_the_duration_chart_plots_the_hourly_p50(watched: Watched, spend_server: PageServer) -> None:
    """Once a request has completed, the duration chart's series are P50 and P95, read from the hourly metrics."""
    spend_server.wait_terminal(spend_server.submit(2)["id"])
    page = sign_in(watched, spend_server.url, spend_server.read_key)
    labels = page.locator("#chart-durations .u-legend .u-series .u-label")
    expect(labels).to_have_text(["Time", "P50", "P95"])
    assert watched.errors == []
