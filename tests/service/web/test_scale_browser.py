"""Many active requests in chromium: the flow list renders a page of rows and a "Show more"."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from tests.e2e.serve import submit_all
from tests.service.web.server import PageServer, page_server
from tests.support.browser import Watched
from tests.support.pg import PgCluster

ACTIVE = 150


@pytest.fixture(scope="module")
def idle_server(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    """A server without a worker, holding ACTIVE pending requests."""
    settings = {"REELTRACE_API_KEYS_REQUIRED": "false"}
    with page_server(pg_cluster, tmp_path_factory.mktemp("page-idle"), settings, worker=False) as server:
        # In a thread: Playwright's sync API may already hold this thread's event loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(submit_all, server.url, [uuid.uuid4() for _ in range(ACTIVE)]).result()
        yield server


def test_the_active_list_is_capped_until_show_more(watched: Watched, idle_server: PageServer) -> None:
    """With 150 active requests, 100 rows are rendered and "Show more" renders the other 50."""
    page = watched.page
    page.goto(idle_server.url + "/monitoring")
    expect(page.locator("#card-active")).to_have_text(str(ACTIVE))
    expect(page.locator("#active .row")).to_have_count(100)
    expect(page.locator("#more")).to_have_text("Show more (50 not shown)")
    page.click("#more")
    expect(page.locator("#active .row")).to_have_count(ACTIVE)
    expect(page.locator("#more")).to_be_hidden()


def test_without_required_keys_the_page_opens_without_sign_in(
    watched: Watched, idle_server: PageServer
) -> None:
    """With REELTRACE_API_KEYS_REQUIRED=false the page opens at once, with no sign-out button."""
    page = watched.page
    page.goto(idle_server.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    assert page.locator("#api_key, form[action='/monitoring/logout']").count() == 0


def test_elapsed_times_tick(watched: Watched, idle_server: PageServer) -> None:
    """A waiting request's elapsed time moves on by itself, with no new event."""
    page = watched.page
    page.goto(idle_server.url + "/monitoring")
    elapsed = page.locator("#active .row .elapsed").first
    expect(elapsed).to_have_text(re.compile(r"\d"))
    before = elapsed.inner_text()
    expect(elapsed).not_to_have_text(before)
