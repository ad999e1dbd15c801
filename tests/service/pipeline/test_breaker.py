"""Circuit breakers: the state walk with an injected clock, and a breaker opening under real failures."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from service.backends.base import InvalidBackendRequest, TransientBackendError
from service.pipeline.breaker import BreakerBoard, BreakerState, CircuitBreaker, CircuitOpen
from service.pipeline.external_calls import ExternalCalls
from service.runtime import Runtime
from service.settings import Settings
from telemetry.metrics import Metrics
from tests.support.backends import FlakyGeneration, flaky_backends
from tests.support.workers import events_of, running_worker, submit, wait_idle, wait_terminal


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_breaker(clock: Clock, metrics: Metrics | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        "generation",
        failure_threshold=3,
        reset_seconds=30.0,
        clock=clock,
        metrics=metrics or Metrics(CollectorRegistry()),
    )


async def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        await breaker.before_call()
        await breaker.record_failure()


def gauge(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("reeltrace_circuit_breaker_state", {"dependency": "generation"})


async def test_opens_after_threshold_failures() -> None:
    """Closed below the threshold; the threshold-th consecutive failure opens it."""
    breaker = make_breaker(Clock())
    await fail(breaker, 2)
    assert breaker.state == BreakerState.CLOSED
    await breaker.before_call()
    change = await breaker.record_failure()
    assert breaker.state == BreakerState.OPEN
    assert change is not None
    assert (change.old, change.new, change.failure_count) == (BreakerState.CLOSED, BreakerState.OPEN, 3)


async def test_success_resets_the_failure_count() -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    breaker = make_breaker(Clock())
    await fail(breaker, 2)
    await breaker.before_call()
    assert await breaker.record_success() is None  # already closed: no state change
    await fail(breaker, 2)
    assert breaker.state == BreakerState.CLOSED


async def test_open_breaker_refuses_calls_with_a_reason() -> None:
    """An open breaker refuses calls without making them, saying why; refusals are counted."""
    breaker = make_breaker(Clock())
    await fail(breaker, 3)
    with pytest.raises(CircuitOpen) as refused:
        await breaker.before_call()
    assert str(refused.value) == (
        "circuit breaker for generation is open after 3 consecutive failures; call refused"
    )
    assert refused.value.retryable is False
    assert breaker.snapshot()["rejected_count"] == 1


async def test_half_open_after_reset_then_closes_on_success() -> None:
    """After the reset timeout one trial call is let through (half-open); its success closes the breaker."""
    clock = Clock()
    metrics = Metrics(CollectorRegistry())
    breaker = make_breaker(clock, metrics)
    assert gauge(metrics) == 0
    await fail(breaker, 3)
    assert gauge(metrics) == 2

    clock.now += 29.9
    with pytest.raises(CircuitOpen):
        await breaker.before_call()
    clock.now += 0.1
    change = await breaker.before_call()
    assert change is not None
    assert (change.old, change.new) == (BreakerState.OPEN, BreakerState.HALF_OPEN)
    assert gauge(metrics) == 1
    # Only one trial at a time.
    with pytest.raises(CircuitOpen):
        await breaker.before_call()

    change = await breaker.record_success()
    assert change is not None
    assert (change.old, change.new) == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
    assert gauge(metrics) == 0
    await breaker.before_call()  # calls flow again


async def test_failed_trial_reopens_for_another_reset_period() -> None:
    """A failed trial opens the breaker again, and the reset timeout starts over."""
    clock = Clock()
    breaker = make_breaker(clock)
    await fail(breaker, 3)
    clock.now += 30
    await breaker.before_call()
    change = await breaker.record_failure()
    assert change is not None
    assert (change.old, change.new) == (BreakerState.HALF_OPEN, BreakerState.OPEN)
    clock.now += 29
    with pytest.raises(CircuitOpen):
        await breaker.before_call()
    clock.now += 1
    await breaker.before_call()
    assert breaker.state == BreakerState.HALF_OPEN


async def test_released_trial_lets_another_trial_through() -> None:
    """A trial that ended without a verdict (an invalid request) frees the slot for the next call."""
    clock = Clock()
    breaker = make_breaker(clock)
    await fail(breaker, 3)
    clock.now += 30
    await breaker.before_call()
    await breaker.release_trial()
    assert await breaker.before_call() is None
    assert breaker.state == BreakerState.HALF_OPEN


async def test_invalid_requests_do_not_open_the_breaker(settings: Settings, database_url: str) -> None:
    """Refusals of invalid input (4xx) are the caller's fault and never count as dependency failures."""
    quick = settings.model_copy(update={"breaker_failure_threshold": 1})
    rt = Runtime.build(quick, database_url, source_service="test")
    backends = flaky_backends(quick, failures=3, error=InvalidBackendRequest("400 bad prompt", code=400))
    try:
        ids = await submit(rt, 3)
        async with running_worker(rt, backends=backends) as (worker, services):
            found = await wait_terminal(rt, ids)
            await wait_idle(worker)
            assert services.breakers["generation"].state == BreakerState.CLOSED
    finally:
        await rt.close()
    assert set(found.values()) == {"failed"}


async def test_breaker_opens_refuses_and_closes_again(settings: Settings, database_url: str) -> None:
    """A failing dependency opens its breaker; later requests fail at once with the reason; after the
    reset timeout a trial call succeeds and closes it; every state change is an event."""
    quick = settings.model_copy(update={"breaker_failure_threshold": 2, "breaker_reset_seconds": 0.5})
    rt = Runtime.build(quick, database_url, source_service="test")
    backends = flaky_backends(quick)
    flaky = backends.generation
    assert isinstance(flaky, FlakyGeneration)
    flaky.broken = True
    try:
        async with running_worker(rt, backends=backends) as (worker, services):
            [first] = await submit(rt)
            await wait_terminal(rt, [first])
            await wait_idle(worker)
            breaker = services.breakers["generation"]
            assert breaker.state == BreakerState.OPEN
            snapshot = {s["dependency"]: s for s in services.breakers.snapshot()}
            assert snapshot["generation"]["state"] == "open"
            assert snapshot["storage"]["state"] == "closed"

            # Attempts 1 and 2 reached the backend and opened the breaker; attempt 3 was refused.
            assert flaky.start_calls == 2
            read = await rt.queries.get_request(first)
            assert read.status == "failed"
            assert read.error_stage == "video_generation"
            reason = "circuit breaker for generation is open after 2 consecutive failures; call refused"
            assert read.error_message == reason
            opened = await events_of(rt, first, "circuit_breaker_open")
            assert len(opened) == 1
            assert opened[0].data == {"dependency": "generation", "consecutive_failures": 2}

            [refused] = await submit(rt)
            await wait_terminal(rt, [refused])
            await wait_idle(worker)
            read = await rt.queries.get_request(refused)
            assert read.error_message == reason
            assert read.retry_count == 0  # a refusal is not retried
            assert flaky.start_calls == 2  # the call was never made

            flaky.broken = False
            await asyncio.sleep(0.6)
            [healed] = await submit(rt)
            await wait_terminal(rt, [healed])
            await wait_idle(worker)
            assert (await rt.queries.get_request(healed)).status == "completed"
            assert breaker.state == BreakerState.CLOSED
            types = [e.event_type for e in await events_of(rt, healed)]
            assert types.index("circuit_breaker_half_open") < types.index("circuit_breaker_closed")
    finally:
        await rt.close()


async def test_trial_cut_off_by_a_timeout_does_not_wedge_the_breaker(runtime: Runtime) -> None:
    """A half-open trial call cancelled before it answers (a stage timeout) frees the trial slot: the
    next call is let through, instead of every call being refused for good."""
    [rid] = await submit(runtime)
    board = BreakerBoard(failure_threshold=1, reset_seconds=0.05)
    calls = ExternalCalls(board, runtime.tracker)

    async def broken() -> str:
        raise TransientBackendError("HTTP 503 from storage.test", code=503)

    async def hangs() -> str:
        await asyncio.sleep(30)
        return "late"

    async def answers() -> str:
        return "ok"

    with pytest.raises(TransientBackendError):
        await calls.call(rid, "storage", "list", broken)
    assert board["storage"].state == BreakerState.OPEN
    await asyncio.sleep(0.06)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await calls.call(rid, "storage", "list", hangs)
    assert board["storage"].state == BreakerState.HALF_OPEN
    assert await calls.call(rid, "storage", "list", answers) == "ok"
    assert board["storage"].state == BreakerState.CLOSED
