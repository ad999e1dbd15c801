"""Request detail in chromium: stages, events and trace link; shareable URL; the find box."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.service.web.server import JAEGER, PageServer
from tests.support.browser import Watched, sign_in


def test_clicking_a_row_shows_stages_events_and_the_trace_link(
    signed_in: Watched, live_server: PageServer
) -> None:
    """The detail of a finished request lists its stages and events and links its trace in Jaeger."""
    done = live_server.wait_terminal(live_server.submit(20)["id"])
    page = signed_in.page
    page.locator(f"#finished .row[data-id='{done['id']}']").click()
    detail = page.locator("#detail")
    expect(detail.locator("tr[data-stage=video_generation]")).to_have_attribute("data-status", "completed")
    expect(detail.locator("tr[data-event=request_completed]")).to_have_count(1)
    expect(detail.locator("a.trace-link")).to_have_attribute("href", f"{JAEGER}/trace/{done['trace_id']}")
    assert page.url.endswith(f"/monitoring/requests/{done['id']}")


def test_a_shared_request_url_opens_its_detail_after_sign_in(
    watched: Watched, live_server: PageServer
) -> None:
    """/monitoring/requests/<correlation id> signs in and then shows that request's detail."""
    done = live_server.wait_terminal(live_server.submit(21)["id"])
    page = sign_in(
        watched, live_server.url, live_server.read_key, f"/monitoring/requests/{done['correlation_id']}"
    )
    expect(page.locator("#detail h1")).to_have_text(done["correlation_id"])


def test_the_find_box_opens_a_request_or_says_it_does_not_exist(
    signed_in: Watched, live_server: PageServer
) -> None:
    """Finding by UUID opens the detail; an unknown correlation ID says there is no such request."""
    done = live_server.wait_terminal(live_server.submit(22)["id"])
    page = signed_in.page
    page.fill("#find-key", done["id"])
    page.press("#find-key", "Enter")
    expect(page.locator("#detail h1")).to_have_text(done["correlation_id"])
    page.fill("#find-key", "vvd_1_deadbeef")
    page.press("#find-key", "Enter")
    expect(page.locator("#detail .not-found")).to_have_text("No request vvd_1_deadbeef.")
