"""The API docs and the page render with every non-loopback request blocked, and log no error."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.service.web.server import PageServer
from tests.support.browser import Watched, sign_in


def test_docs_render_their_operations_offline(watched: Watched, live_server: PageServer) -> None:
    """/docs (Swagger UI) shows the API's operations without any request leaving the machine."""
    page = watched.page
    page.goto(live_server.url + "/docs")
    expect(page.locator(".opblock-summary-path[data-path='/api/v1/requests']")).to_have_count(1)
    assert watched.blocked == []


def test_redoc_renders_its_operations_offline(watched: Watched, live_server: PageServer) -> None:
    """/redoc shows the API's operations without any request leaving the machine."""
    page = watched.page
    page.goto(live_server.url + "/redoc")
    expect(page.locator("[data-section-id^='tag/monitoring/operation']").first).to_be_attached()
    assert watched.blocked == []


def test_no_page_logs_a_console_error(watched: Watched, live_server: PageServer) -> None:
    """The login form, the page, a request's detail, /docs and /redoc log no console error."""
    done = live_server.wait_terminal(live_server.submit(30)["id"])
    page = watched.page
    page.goto(live_server.url + "/monitoring")
    expect(page.locator("#api_key")).to_be_visible()
    sign_in(watched, live_server.url, live_server.read_key)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#chart-outcomes .uplot")).to_have_count(1)
    page.goto(f"{live_server.url}/monitoring/requests/{done['id']}")
    expect(page.locator("#detail tr[data-event=request_completed]")).to_have_count(1)
    page.goto(live_server.url + "/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    page.goto(live_server.url + "/redoc")
    expect(page.locator("[data-section-id^='tag/monitoring/operation']").first).to_be_attached()
    assert watched.errors == []
    assert watched.blocked == []
