"""The live page in chromium against a real server: requests appear, advance and finish,
and a dropped stream catches up on reconnect."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.service.web.server import PageServer
from tests.support.browser import Watched, sign_in, watched_page
from tests.support.pipelines import stage_names
from tests.support.tcp_proxy import CuttableProxy


def test_a_submitted_request_appears_in_the_active_flow(signed_in: Watched, live_server: PageServer) -> None:
    """A request submitted through the API shows up as an active row, pushed by the stream."""
    accepted = live_server.submit(1)
    row = signed_in.page.locator(f"#active .row[data-id='{accepted['id']}']")
    expect(row).to_be_visible()
    expect(row.locator(".row-id")).to_have_text(accepted["correlation_id"])


def test_pills_advance_and_the_row_moves_to_recently_finished(
    signed_in: Watched, live_server: PageServer
) -> None:
    """A running request's pills advance to video generation, then its row leaves for
    "recently finished" with every pill done."""
    accepted = live_server.submit(2)
    page = signed_in.page
    active = page.locator(f"#active .row[data-id='{accepted['id']}']")
    expect(active.locator(".pill[data-stage=video_generation]")).to_have_attribute("data-state", "running")
    expect(active.locator(".pill[data-stage=validation]")).to_have_attribute("data-state", "done")
    finished = page.locator(f"#finished .row[data-id='{accepted['id']}']")
    expect(finished).to_have_attribute("data-status", "completed")
    expect(active).to_have_count(0)
    states = finished.locator(".pill").evaluate_all("ps => ps.map(p => p.dataset.state)")
    assert states == ["done"] * len(stage_names("veo"))


def test_filters_narrow_the_lists(signed_in: Watched, live_server: PageServer) -> None:
    """Filtering by user and by pipeline keeps only the matching rows."""
    lesson = live_server.wait_terminal(live_server.submit(4, pipeline="lesson", topic="tides")["id"])
    veo = live_server.wait_terminal(live_server.submit(5)["id"])
    page = signed_in.page
    lesson_row = page.locator(f"#finished .row[data-id='{lesson['id']}']")
    veo_row = page.locator(f"#finished .row[data-id='{veo['id']}']")
    expect(veo_row).to_have_count(1)
    page.select_option("#f-pipeline", "lesson")
    expect(veo_row).to_have_count(0)
    expect(lesson_row).to_have_count(1)
    page.select_option("#f-pipeline", "")
    page.fill("#f-user", veo["user_id"])
    expect(lesson_row).to_have_count(0)
    expect(veo_row).to_have_count(1)


def test_after_a_dropped_stream_the_missed_requests_are_there(
    browser: object, live_server: PageServer
) -> None:
    """With the stream cut (banner shown), requests that start and finish meanwhile appear
    as finished once the page has reconnected by itself."""
    with CuttableProxy(live_server.serve.port) as proxy:
        watched = watched_page(browser)  # type: ignore[arg-type]
        try:
            page = sign_in(watched, proxy.url, live_server.read_key)
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
            proxy.cut()
            expect(page.locator("#banner")).to_be_visible()
            missed = [live_server.submit(10 + i) for i in range(3)]
            for accepted in missed:
                live_server.wait_terminal(accepted["id"])
            proxy.resume()
            expect(page.locator("#banner")).to_be_hidden()
            for accepted in missed:
                row = page.locator(f"#finished .row[data-id='{accepted['id']}']")
                expect(row).to_have_attribute("data-status", "completed")
        finally:
            watched.close()
