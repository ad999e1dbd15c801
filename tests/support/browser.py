"""Debian's chromium driven by Playwright, for the page tests.

Playwright is used with the system browser (`executable_path`), never with a
browser it downloads: CI installs `chromium` with apt, like `prometheus`. Without
chromium the tests skip (fail under CI). A page records its console errors and
uncaught exceptions; a context can be cut off from every host but loopback.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from tests.conftest import require_tool

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def chromium_path() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    return require_tool("chromium", found)


@contextmanager
def launched() -> Iterator[Browser]:
    """One headless chromium (sandbox off: CI containers run as root)."""
    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page and what went wrong in it: console errors, uncaught exceptions, blocked requests."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.context.close()


def watched_page(browser: Browser, *, offline: bool = True) -> Watched:
    """A new context and page; with `offline`, every non-loopback request is refused and noted."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    watched = Watched(context, page)
    page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: watched.errors.append(f"uncaught: {exc}"))
    if offline:

        def only_loopback(route: Route) -> None:
            url = route.request.url
            if (
                urlsplit(url).scheme in ("http", "https", "ws", "wss")
                and urlsplit(url).hostname not in LOOPBACK
            ):
                watched.blocked.append(url)
                route.abort("blockedbyclient")
            else:
                route.continue_()

        context.route("**/*", only_loopback)
    return watched


def sign_in(watched: Watched, base_url: str, key: str, path: str = "/monitoring") -> Page:
    """Open `path`, fill the login form with `key` and submit it."""
    page = watched.page
    page.goto(base_url + path)
    page.fill("#api_key", key)
    page.click("form.login-card button[type=submit]")
    return page
