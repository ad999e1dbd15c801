"""Signing in to the monitoring page in chromium: a read key opens it, nothing else does."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.service.web.server import PageServer
from tests.support.browser import Watched, sign_in


def test_without_a_session_the_page_is_the_login_form(watched: Watched, live_server: PageServer) -> None:
    """Opening the page without a session shows the login form and no request data."""
    page = watched.page
    page.goto(live_server.url + "/")
    expect(page.locator("#api_key")).to_be_visible()
    assert page.url == live_server.url + "/monitoring"
    assert page.locator("#active, #boot, #breakers").count() == 0


def test_a_wrong_key_is_refused(watched: Watched, live_server: PageServer) -> None:
    """A key that does not exist gets the form back with an error, and no session."""
    page = sign_in(watched, live_server.url, "rt_" + "x" * 43)
    expect(page.locator(".login-error")).to_have_text("Invalid or revoked API key.")
    assert watched.context.cookies() == []


def test_a_read_key_opens_the_page_with_a_strict_httponly_cookie(
    watched: Watched, live_server: PageServer
) -> None:
    """Signing in with a read key shows the live page and sets an HttpOnly, SameSite=Strict cookie."""
    page = sign_in(watched, live_server.url, live_server.read_key)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    [cookie] = watched.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("reeltrace_session", True, "Strict")
    assert live_server.read_key not in cookie["value"]
