"""Callback deliveries: isolated per receiver, durable across restarts, retried with backoff in a window."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import generate_latest

from service.runtime import Runtime
from service.settings import Settings
from service.tracking.write_values import EventWrite, LogEvent
from service.webhooks.delivery import backoff_seconds
from service.wiring import build_pipeline
from telemetry.metrics import get_metrics
from tests.service.webhooks.conftest import delivery_rows
from tests.support.callback import CallbackServer
from tests.support.workers import events_of, running_worker, statuses, submit, wait_for


def notification_status(read: object) -> str:
    return next(s.status for s in read.stages if s.name == "notification")  # type: ignore[attr-defined]


async def wait_notification(
    runtime: Runtime, ids: list[uuid.UUID], wanted: set[str], within: float = 30
) -> None:
    async def reached() -> bool:
        for rid in ids:
            if notification_status(await runtime.queries.get_request(rid)) not in wanted:
                return False
        return True

    await wait_for(reached, within, f"notification stages {wanted}")


async def test_dead_receiver_does_not_hold_back_other_receivers(
    hook_settings: Settings, database_url: str, receiver: CallbackServer, closed_port_url: str
) -> None:
    """Three callbacks to a closed port, then ten of other users to a working receiver: all ten
    are delivered, and all thirteen requests complete (a dead receiver fails nobody)."""
    rt = Runtime.build(hook_settings, database_url, source_service="test")
    try:
        async with running_worker(rt):
            dead = await submit(rt, 3, user_id="dead-hook", parameters={"callback_url": closed_port_url})
            await wait_notification(rt, dead, {"in_progress", "failed"})
            good = []
            for i in range(10):
                good += await submit(rt, user_id=f"user-{i}", parameters={"callback_url": receiver.url})
            await wait_notification(rt, good, {"completed", "failed"})
        found = await statuses(rt, dead + good)
        good_reads = [await rt.queries.get_request(rid) for rid in good]
        dead_reads = [await rt.queries.get_request(rid) for rid in dead]
    finally:
        await rt.close()

    assert set(found.values()) == {"completed"}
    assert {notification_status(r) for r in good_reads} == {"completed"}
    assert len(receiver.deliveries) == 10
    assert {notification_status(r) for r in dead_reads} == {"in_progress"}  # still being retried


async def test_pending_delivery_survives_a_restart(
    hook_settings: Settings, database_url: str, receiver: CallbackServer
) -> None:
    """A callback whose receiver failed is delivered by a worker of a later process, same delivery id."""
    receiver.answers = [503] * 4
    patient = hook_settings.model_copy(update={"webhook_retry_base_seconds": 0.5})
    first = Runtime.build(patient, database_url, source_service="first")
    try:
        [rid] = await submit(first, parameters={"callback_url": receiver.url})
        async with running_worker(first):

            async def attempted() -> bool:
                return bool(await events_of(first, rid, "notification_attempt_failed"))

            await wait_for(attempted, 20, "first attempt failed")
    finally:
        await first.close()
    assert len(receiver.deliveries) == 1
    receiver.answers = []  # the receiver is back

    second = Runtime.build(patient, database_url, source_service="second")
    try:
        async with running_worker(second):
            await wait_notification(second, [rid], {"completed"})
        [row] = await delivery_rows(second, rid)
    finally:
        await second.close()
    assert row["outcome"] == "delivered"
    assert row["attempts"] == 2
    assert row["last_status_code"] == 200
    assert [d.headers["x-reeltrace-delivery"] for d in receiver.deliveries] == [str(row["id"])] * 2


async def test_failed_attempts_back_off_exponentially(
    hook_settings: Settings, database_url: str, receiver: CallbackServer
) -> None:
    """Each failed attempt schedules the next after base * 2^(attempt-1) (plus at most 10% jitter)."""
    receiver.answers = [500] * 3
    settings = hook_settings.model_copy(update={"webhook_retry_base_seconds": 0.05})
    rt = Runtime.build(settings, database_url, source_service="test")
    try:
        [rid] = await submit(rt, parameters={"callback_url": receiver.url})
        async with running_worker(rt):
            await wait_notification(rt, [rid], {"completed"})
        failed = await events_of(rt, rid, "notification_attempt_failed")
    finally:
        await rt.close()

    assert [e.data["attempt"] for e in failed] == [1, 2, 3]
    for event in failed:
        wait = datetime.fromisoformat(event.data["next_attempt_at"]) - event.created_at
        expected = timedelta(seconds=0.05 * 2 ** (event.data["attempt"] - 1))
        assert expected <= wait <= expected * 1.1


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 10.0), (2, 20.0), (5, 160.0), (9, 2560.0), (10, 3600.0), (500, 3600.0)]
)
def test_backoff_doubles_up_to_its_cap(attempt: int, expected: float) -> None:
    """The wait doubles from the base per failed attempt and never exceeds the maximum."""
    assert backoff_seconds(attempt, 10.0, 3600.0) == expected


async def test_delivery_gives_up_when_the_window_is_over(
    hook_settings: Settings, database_url: str, closed_port_url: str
) -> None:
    """Past the retry window the delivery is failed (no next attempt), the stage failed, the request not."""
    settings = hook_settings.model_copy(update={"webhook_retry_window_seconds": 0.2})
    rt = Runtime.build(settings, database_url, source_service="test")
    try:
        [rid] = await submit(rt, parameters={"callback_url": closed_port_url})
        async with running_worker(rt):
            await wait_notification(rt, [rid], {"failed"})
        [row] = await delivery_rows(rt, rid)
        read = await rt.queries.get_request(rid)
        gave_up = await events_of(rt, rid, "notification_gave_up")
    finally:
        await rt.close()
    assert (row["outcome"], row["next_attempt_at"], row["last_status_code"]) == ("failed", None, None)
    assert "ConnectError" in str(row["last_error"])
    assert read.status == "completed"
    assert [e.data["attempt"] for e in gave_up] == [row["attempts"]]


async def test_a_refused_answer_is_recorded_with_its_code_and_latency(
    hook_settings: Settings, database_url: str, receiver: CallbackServer
) -> None:
    """Each attempt leaves the answer code and latency on the delivery row and in its event."""
    receiver.answers = [410]
    rt = Runtime.build(hook_settings, database_url, source_service="test")
    try:
        [rid] = await submit(rt, parameters={"callback_url": receiver.url})
        async with running_worker(rt):
            await wait_notification(rt, [rid], {"completed"})
        [failed] = await events_of(rt, rid, "notification_attempt_failed")
        [row] = await delivery_rows(rt, rid)
    finally:
        await rt.close()
    assert failed.data["status_code"] == 410
    assert failed.data["latency_ms"] >= 0
    assert failed.data["error"] == "HTTP 410"
    assert (row["last_status_code"], row["attempts"], row["url"]) == (200, 2, receiver.url)
    assert row["last_latency_ms"] is not None


async def test_metrics_carry_no_receiver_host_or_url(
    hook_settings: Settings, database_url: str, receiver: CallbackServer, closed_port_url: str
) -> None:
    """After attempts to two receivers, no metric series names a host or URL; attempts count by outcome."""
    registry = get_metrics().registry
    before = registry.get_sample_value("reeltrace_webhook_attempts_total", {"outcome": "retrying"}) or 0.0
    rt = Runtime.build(hook_settings, database_url, source_service="test")
    try:
        [dead] = await submit(rt, parameters={"callback_url": closed_port_url})
        [good] = await submit(rt, parameters={"callback_url": receiver.url})
        async with running_worker(rt):
            await wait_notification(rt, [good], {"completed"})

            async def refused() -> bool:
                return bool(await events_of(rt, dead, "notification_attempt_failed"))

            await wait_for(refused, 20, "the dead receiver's attempt recorded")
    finally:
        await rt.close()
    exposition = generate_latest(registry).decode()
    assert "127.0.0.1" not in exposition
    assert "/hooks" not in exposition
    assert (
        registry.get_sample_value("reeltrace_webhook_attempts_total", {"outcome": "retrying"}) or 0
    ) > before


async def test_degraded_run_sends_once_and_journals_the_stage(
    hook_settings: Settings, database_url: str, receiver: CallbackServer
) -> None:
    """While tracking writes wait in the journal, no delivery row can be kept: the callback is sent once
    and the notification stage's result is journaled behind the writes before it."""
    rt = Runtime.build(hook_settings, database_url, source_service="test")
    services = build_pipeline(rt)
    rid = uuid.uuid4()
    try:
        rt.journal.append(
            LogEvent(
                event=EventWrite(request_id=rid, event_type="request_created", created_at=datetime.now(UTC))
            )
        )
        output = await services.runner.bodies.notifications.notify(
            rid, receiver.url, "request.completed", {"id": str(rid)}
        )
        pending = rt.journal.pending_count()
        rows = await delivery_rows(rt, rid)
    finally:
        await services.aclose()
        await rt.close()
    assert (output["sent"], output["status_code"], output["attempts"]) == (True, 200, 1)
    assert len(receiver.deliveries) == 1
    assert pending == 2
    assert rows == []


class _SlowHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        time.sleep(2)  # longer than the webhook timeout of the test
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


async def test_slow_receiver_times_out_and_holds_back_nobody(
    hook_settings: Settings, database_url: str, receiver: CallbackServer
) -> None:
    """A receiver slower than REELTRACE_WEBHOOK_TIMEOUT_SECONDS gets a failed attempt ("no answer within"),
    and another receiver's callback is delivered meanwhile."""
    slow = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    slow_url = f"http://127.0.0.1:{slow.server_address[1]}/hook"
    settings = hook_settings.model_copy(
        update={"webhook_timeout_seconds": 0.3, "webhook_retry_base_seconds": 5.0}
    )
    rt = Runtime.build(settings, database_url, source_service="test")
    try:
        [late] = await submit(rt, parameters={"callback_url": slow_url})
        [good] = await submit(rt, parameters={"callback_url": receiver.url})
        async with running_worker(rt):
            await wait_notification(rt, [good], {"completed"})

            async def timed_out() -> bool:
                return bool(await events_of(rt, late, "notification_attempt_failed"))

            await wait_for(timed_out, 20, "the slow receiver's attempt recorded")
        [row] = await delivery_rows(rt, late)
    finally:
        await rt.close()
        slow.shutdown()
        slow.server_close()
    assert row["last_error"] == "no answer within 0.3 s"
    assert (row["outcome"], row["attempts"]) == ("pending", 1)
    assert len(receiver.deliveries) == 1
