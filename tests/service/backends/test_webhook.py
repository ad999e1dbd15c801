"""Webhook notifications: signed POSTs to a real local HTTP server, retries, and no URL, no call."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.backends.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    WebhookNotifier,
    load_or_create_secret,
    sign,
    verify_signature,
)
from service.runtime import Runtime
from service.settings import Settings
from service.tracking.schemas import RequestRead
from tests.support.callback import CallbackServer
from tests.support.workers import events_of, run_to_end, running_worker, submit, wait_for

SECRET = b"test-webhook-secret"


@pytest.fixture
def callback() -> Iterator[CallbackServer]:
    with CallbackServer() as server:
        yield server


@pytest.fixture
def webhook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_secret": SECRET.decode(),
            "worker_poll_seconds": 0.02,
            "webhook_retry_base_seconds": 0.01,
        }
    )


async def notified(runtime: Runtime, rid: uuid.UUID, within: float = 20.0) -> RequestRead:
    """Run a worker until the request's notification stage has ended; the request then."""

    async def ended() -> bool:
        read = await runtime.queries.get_request(rid)
        return next(s for s in read.stages if s.name == "notification").status in ("completed", "failed")

    async with running_worker(runtime):
        await wait_for(ended, within, "notification ended")
    return await runtime.queries.get_request(rid)


async def test_signature_verifies_on_the_receiving_side(callback: CallbackServer) -> None:
    """The receiver can verify the X-Reeltrace-Signature of the exact body it got; any change breaks it."""
    notifier = WebhookNotifier(SECRET)
    try:
        status = await notifier.send(callback.url, "request.completed", {"id": "r1", "status": "completed"})
    finally:
        await notifier.aclose()
    assert status == 200
    [delivery] = callback.deliveries
    header = delivery.headers[SIGNATURE_HEADER.lower()]
    assert header.startswith("sha256=")
    assert verify_signature(SECRET, delivery.body, header)
    assert json.loads(delivery.body) == {"id": "r1", "status": "completed"}
    assert delivery.headers[EVENT_HEADER.lower()] == "request.completed"
    assert delivery.headers["content-type"] == "application/json"
    assert not verify_signature(SECRET, delivery.body.replace(b"completed", b"failed"), header)
    assert not verify_signature(b"another-secret", delivery.body, header)
    assert not verify_signature(SECRET, delivery.body, None)
    assert not verify_signature(SECRET, delivery.body, header.removeprefix("sha256="))


def test_signature_is_hmac_sha256_hex() -> None:
    """The signature is `sha256=` + the hex HMAC-SHA256 of the body under the secret."""
    body = b'{"id":"x"}'
    assert sign(SECRET, body) == "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()


async def test_error_answer_raises(callback: CallbackServer) -> None:
    """A non-2xx answer raises, so the caller can retry."""
    callback.answers = [503]
    notifier = WebhookNotifier(SECRET)
    try:
        with pytest.raises(httpx.HTTPStatusError):
            await notifier.send(callback.url, "request.completed", {"id": "r1"})
    finally:
        await notifier.aclose()


def test_secret_is_created_once_and_private(tmp_path: Path) -> None:
    """Without a configured secret, one is generated into the data dir (mode 0600) and reused."""
    first = load_or_create_secret(None, tmp_path)
    assert len(first) >= 32
    assert stat.S_IMODE((tmp_path / "webhook_secret").stat().st_mode) == 0o600
    assert load_or_create_secret(None, tmp_path) == first
    assert load_or_create_secret("configured", tmp_path) == b"configured"


async def test_completed_request_is_posted_signed(
    webhook_settings: Settings, database_url: str, callback: CallbackServer
) -> None:
    """With a callback_url, the final request JSON is POSTed once, signed, and the stage completes."""
    rt = Runtime.build(webhook_settings, database_url, source_service="test")
    try:
        [rid] = await submit(rt, parameters={"callback_url": callback.url})
        read = (await run_to_end(rt, [rid]))[rid]
        sent = await events_of(rt, rid, "notification_sent")
    finally:
        await rt.close()

    assert read.status == "completed"
    [delivery] = callback.deliveries
    notification = next(s for s in read.stages if s.name == "notification")
    assert notification.status == "completed"
    assert notification.output == {
        "sent": True,
        "delivery_id": delivery.headers[DELIVERY_HEADER.lower()],
        "outcome": "delivered",
        "attempts": 1,
        "status_code": 200,
        "next_attempt_at": None,
    }
    assert verify_signature(SECRET, delivery.body, delivery.headers[SIGNATURE_HEADER.lower()])
    payload = json.loads(delivery.body)
    assert payload["id"] == str(rid)
    assert payload["status"] == "completed"
    assert payload["video_urls"] == read.video_urls
    assert delivery.headers[EVENT_HEADER.lower()] == "request.completed"
    assert [e.data["status_code"] for e in sent] == [200]


async def test_notification_is_retried(
    webhook_settings: Settings, database_url: str, callback: CallbackServer
) -> None:
    """A receiver answering 503 twice gets the notification on the third attempt, same delivery id."""
    callback.answers = [503, 503, 200]
    rt = Runtime.build(webhook_settings, database_url, source_service="test")
    try:
        [rid] = await submit(rt, parameters={"callback_url": callback.url})
        read = await notified(rt, rid)
        failed = await events_of(rt, rid, "notification_attempt_failed")
        sent = await events_of(rt, rid, "notification_sent")
    finally:
        await rt.close()

    notification = next(s for s in read.stages if s.name == "notification")
    assert notification.status == "completed"
    assert notification.output is not None
    assert notification.output["attempts"] == 3
    assert [(e.data["attempt"], e.data["status_code"]) for e in failed] == [(1, 503), (2, 503)]
    assert [(e.data["attempt"], e.data["status_code"]) for e in sent] == [(3, 200)]
    assert read.retry_count == 0  # a callback's retries are the delivery's, not the request's
    assert len(callback.deliveries) == 3
    assert len({d.headers[DELIVERY_HEADER.lower()] for d in callback.deliveries}) == 1
    for delivery in callback.deliveries:
        assert verify_signature(SECRET, delivery.body, delivery.headers[SIGNATURE_HEADER.lower()])


async def test_lost_notification_leaves_the_outcome(
    webhook_settings: Settings, database_url: str, callback: CallbackServer
) -> None:
    """A receiver that keeps failing past the retry window fails the notification stage, not the request."""
    callback.answers = [500] * 1000
    short_window = webhook_settings.model_copy(update={"webhook_retry_window_seconds": 0.3})
    rt = Runtime.build(short_window, database_url, source_service="test")
    try:
        [rid] = await submit(rt, parameters={"callback_url": callback.url})
        read = await notified(rt, rid)
        gave_up = await events_of(rt, rid, "notification_gave_up")
    finally:
        await rt.close()

    assert read.status == "completed"
    assert read.error_message is None
    notification = next(s for s in read.stages if s.name == "notification")
    assert notification.status == "failed"
    assert "HTTP 500" in (notification.error_message or "")
    [last] = gave_up
    assert last.data["attempt"] == len(callback.deliveries) >= 2


async def test_failed_request_is_notified(
    webhook_settings: Settings, database_url: str, callback: CallbackServer
) -> None:
    """A failed request is notified too, with its error, as event `request.failed`."""
    rt = Runtime.build(webhook_settings, database_url, source_service="test")
    try:
        [rid] = await submit(rt, duration_seconds=5, parameters={"callback_url": callback.url})
        await run_to_end(rt, [rid])
    finally:
        await rt.close()
    [delivery] = callback.deliveries
    payload = json.loads(delivery.body)
    assert payload["status"] == "failed"
    assert payload["error_stage"] == "validation"
    assert delivery.headers[EVENT_HEADER.lower()] == "request.failed"


async def test_no_callback_url_no_notification(runtime: Runtime, callback: CallbackServer) -> None:
    """Without a callback_url nothing is sent and the notification stage is skipped with the reason."""
    [rid] = await submit(runtime)
    read = (await run_to_end(runtime, [rid]))[rid]
    notification = next(s for s in read.stages if s.name == "notification")
    assert notification.status == "skipped"
    skipped = await events_of(runtime, rid, "stage_skipped")
    assert [e.data["reason"] for e in skipped] == ["no callback_url was given"]
    assert callback.deliveries == []
