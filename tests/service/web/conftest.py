"""Fixtures for the page's browser tests: one chromium per module, one live server per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.service.web.server import PageServer, page_server
from tests.support.browser import Watched, launched, sign_in, watched_page
from tests.support.pg import PgCluster

# A loaded CI machine may take seconds where a laptop takes milliseconds: expectations
# wait for a state, and fail only if it never comes.
expect.set_options(timeout=20_000)


# Per module, not per session: Playwright's sync API keeps an event loop running in
# this thread while it is open, which would stop every later async test from running.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched() as b:
        yield b


@pytest.fixture(scope="session")
def live_server(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    """A healthy server: every request completes in about three seconds."""
    with page_server(pg_cluster, tmp_path_factory.mktemp("page-live"), {}) as server:
        yield server


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    """A fresh browser context (no cookies) that may reach loopback only."""
    w = watched_page(browser)
    yield w
    w.close()


@pytest.fixture
def signed_in(watched: Watched, live_server: PageServer) -> Watched:
    """The monitoring page, signed in with a read key."""
    sign_in(watched, live_server.url, live_server.read_key)
    watched.page.wait_for_selector("#live[data-state=live]")
    return watched


# The API's fixtures (the app over ASGI, keys of each scope) for the page's HTTP tests.
from tests.service.api.conftest import app, client, make_key  # noqa: E402, F401
