"""Failures on the page in chromium, against a server whose generation always hits its quota."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.service.web.server import PageServer, page_server
from tests.support.browser import Watched, sign_in
from tests.support.pg import PgCluster


@pytest.fixture(scope="module")
def storm_server(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    """Every generation call answers 429: each request fails at video_generation, and the
    generation breaker opens after two consecutive failures."""
    settings = {
        "REELTRACE_SIM_QUOTA_ERROR_RATE": "1",
        "REELTRACE_MAX_RETRIES": "1",
        "REELTRACE_BREAKER_FAILURE_THRESHOLD": "2",
        "REELTRACE_BREAKER_RESET_SECONDS": "600",
    }
    with page_server(pg_cluster, tmp_path_factory.mktemp("page-storm"), settings) as server:
        yield server


@pytest.fixture
def storm_page(watched: Watched, storm_server: PageServer) -> Watched:
    sign_in(watched, storm_server.url, storm_server.read_key)
    expect(watched.page.locator("#live")).to_have_attribute("data-state", "live")
    return watched


def test_a_failed_request_shows_red_with_its_stage(storm_page: Watched, storm_server: PageServer) -> None:
    """A failed request's row is red in "recently finished", its failed pill and message name the stage."""
    failed = storm_server.wait_terminal(storm_server.submit(1)["id"])
    assert failed["status"] == "failed"
    row = storm_page.page.locator(f"#finished .row[data-id='{failed['id']}']")
    expect(row).to_have_class("row failed")
    expect(row.locator(".pill[data-state=failed]")).to_have_attribute("data-stage", "video_generation")
    expect(row.locator(".row-error")).to_contain_text("Failed at video generation")
    expect(row).to_have_css("background-color", "rgb(255, 245, 245)")


def test_a_quota_storm_opens_the_generation_breaker_badge(
    storm_page: Watched, storm_server: PageServer
) -> None:
    """After a storm of quota errors, the generation breaker's badge turns OPEN (and red)."""
    for index in range(3):
        storm_server.wait_terminal(storm_server.submit(10 + index)["id"])
    badge = storm_page.page.locator(".breaker[data-dependency=generation]")
    expect(badge).to_have_attribute("data-state", "open")
    expect(badge.locator("b")).to_have_text("OPEN")
