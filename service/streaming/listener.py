"""One LISTEN connection per process, fanned out to stream subscribers.

A trigger announces every insert into `request_events` on the `reeltrace_events`
channel with `{"id", "request_id", "event_type"}`. The hub holds one autocommit
psycopg connection listening there and wakes the subscribers a notification may
concern; each subscriber then reads the event log itself. Notifications carry no
content that matters, so a lost one costs nothing but latency: when the connection
drops, the hub reconnects with backoff and wakes every subscriber, which catches up
from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import uuid

import psycopg
import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from service.streaming.repository import LISTEN, PING

log = structlog.get_logger("reeltrace.stream")

# OSError covers a refused or reset socket before psycopg wraps it.
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, OSError)


class Subscription:
    """A subscriber's wake-up flag, set by matching notifications."""

    def __init__(self, hub: EventHub, request_id: uuid.UUID | None) -> None:
        self._hub = hub
        self.request_id = request_id
        self._wake = asyncio.Event()

    def notify(self, request_id: uuid.UUID | None) -> None:
        """Wake up if the event may concern this subscriber (None: anything may have changed)."""
        if request_id is None or self.request_id is None or request_id == self.request_id:
            self._wake.set()

    async def wait(self, at_most: float | None = None) -> bool:
        """Wait for a wake-up (True) or `at_most` seconds (False); the flag is cleared either way."""
        try:
            async with asyncio.timeout(at_most):
                await self._wake.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self._wake.clear()

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    """The process's listener; started on the first subscription, stopped with the app."""

    def __init__(self, dsn: str, *, health_interval: float = 5.0, max_backoff: float = 5.0) -> None:
        self.dsn = dsn
        self.health_interval = health_interval
        self.max_backoff = max_backoff
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self, request_id: uuid.UUID | None = None) -> Subscription:
        self.ensure_started()
        sub = Subscription(self, request_id)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            # A fresh context: the listener outlives the request that started it, and
            # must not carry that request's log fields.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="reeltrace-event-listener", context=contextvars.Context()
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected.clear()

    def wake_all(self) -> None:
        for sub in list(self._subscribers):
            sub.notify(None)

    def dispatch(self, payload: str) -> None:
        """Wake the subscribers a notification payload may concern."""
        try:
            request_id: uuid.UUID | None = uuid.UUID(json.loads(payload)["request_id"])
        except (ValueError, KeyError, TypeError):
            request_id = None  # an unreadable payload still means "something changed"
        for sub in list(self._subscribers):
            sub.notify(request_id)

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_CONNECTION_ERRORS),
            wait=wait_exponential_jitter(initial=0.1, max=self.max_backoff),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.info("stream_listener_reconnecting", attempt=attempt.retry_state.attempt_number)
                return await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, connect_timeout=5, application_name="reeltrace-stream"
                )
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying retries forever

    async def _run(self) -> None:
        while True:
            try:
                conn = await self._connect()
                async with conn:
                    await conn.execute(LISTEN)
                    self.connected.set()
                    log.info("stream_listener_connected")
                    # Anything committed while no connection listened is in the log.
                    self.wake_all()
                    while True:
                        async for notify in conn.notifies(timeout=self.health_interval):
                            self.dispatch(notify.payload)
                        # A quiet interval: prove the connection is alive (a dead
                        # peer would otherwise leave notifies() waiting forever).
                        await conn.execute(PING)
            except Exception as exc:  # the listener must outlive any failure; it reconnects
                self.connected.clear()
                log.warning("stream_listener_lost", error=type(exc).__name__, detail=str(exc)[:200])
                self.wake_all()
                await asyncio.sleep(0.1)
