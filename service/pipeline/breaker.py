"""Circuit breakers, one per external dependency.

CLOSED lets calls through and counts consecutive failures; at the threshold it turns
OPEN and refuses calls at once. After the reset timeout one trial call is let through
(HALF_OPEN): success closes the breaker, failure opens it again. Only failures that
say something about the dependency's health count (errors of the call itself, not a
request the dependency rightly refused as invalid).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from service.backends.base import BackendError
from telemetry.metrics import BREAKER_STATE_VALUES, Metrics, get_metrics

DEPENDENCIES = ("generation", "storage", "notification", "retrieval", "script", "embedding")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(BackendError):
    """The dependency's breaker is open: the call was refused without being made."""

    error = "circuit_open"
    retryable = False


@dataclass(frozen=True, slots=True)
class StateChange:
    dependency: str
    old: BreakerState
    new: BreakerState
    failure_count: int


class CircuitBreaker:
    def __init__(
        self,
        dependency: str,
        *,
        failure_threshold: int = 5,
        reset_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.dependency = dependency
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.metrics = metrics or get_metrics()
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.failure_count = 0
        self.success_count = 0
        self.call_count = 0
        self.rejected_count = 0
        self.opened_at: datetime | None = None
        self.last_failure_at: datetime | None = None
        self._opened_mono = 0.0
        self._trial_in_flight = False
        self._lock = asyncio.Lock()
        self._publish()

    def _publish(self) -> None:
        self.metrics.circuit_breaker_state.labels(dependency=self.dependency).set(
            BREAKER_STATE_VALUES[self.state.value]
        )

    def _move(self, new: BreakerState) -> StateChange | None:
        if new == self.state:
            return None
        change = StateChange(self.dependency, self.state, new, self.consecutive_failures)
        self.state = new
        if new == BreakerState.OPEN:
            self._opened_mono = self.clock()
            self.opened_at = datetime.now(UTC)
        self._publish()
        return change

    async def before_call(self) -> StateChange | None:
        """Admit a call or raise CircuitOpen; may move OPEN -> HALF_OPEN."""
        async with self._lock:
            change = None
            if self.state == BreakerState.OPEN and self.clock() - self._opened_mono >= self.reset_seconds:
                change = self._move(BreakerState.HALF_OPEN)
            if self.state == BreakerState.OPEN or (
                self.state == BreakerState.HALF_OPEN and self._trial_in_flight
            ):
                self.rejected_count += 1
                raise CircuitOpen(
                    f"circuit breaker for {self.dependency} is open after "
                    f"{self.consecutive_failures} consecutive failures; call refused",
                    code="circuit_open",
                )
            if self.state == BreakerState.HALF_OPEN:
                self._trial_in_flight = True
            self.call_count += 1
            return change

    async def record_success(self) -> StateChange | None:
        async with self._lock:
            self.success_count += 1
            self.consecutive_failures = 0
            self._trial_in_flight = False
            return self._move(BreakerState.CLOSED)

    async def record_failure(self) -> StateChange | None:
        async with self._lock:
            self.failure_count += 1
            self.consecutive_failures += 1
            self.last_failure_at = datetime.now(UTC)
            was_trial = self._trial_in_flight
            self._trial_in_flight = False
            if was_trial or self.consecutive_failures >= self.failure_threshold:
                return self._move(BreakerState.OPEN)
            return None

    async def release_trial(self) -> None:
        """A trial call ended without a verdict (e.g. an invalid request): let another try."""
        async with self._lock:
            self._trial_in_flight = False

    def snapshot(self) -> dict[str, Any]:
        return {
            "dependency": self.dependency,
            "state": self.state.value,
            "failure_count": self.failure_count,
            "consecutive_failures": self.consecutive_failures,
            "success_count": self.success_count,
            "call_count": self.call_count,
            "rejected_count": self.rejected_count,
            "failure_threshold": self.failure_threshold,
            "reset_seconds": self.reset_seconds,
            "last_failure_at": self.last_failure_at,
            "opened_at": self.opened_at,
        }


class BreakerBoard:
    """The breakers of one process, by dependency name."""

    def __init__(self, *, failure_threshold: int = 5, reset_seconds: float = 30.0) -> None:
        self.breakers = {
            dep: CircuitBreaker(dep, failure_threshold=failure_threshold, reset_seconds=reset_seconds)
            for dep in DEPENDENCIES
        }

    def __getitem__(self, dependency: str) -> CircuitBreaker:
        return self.breakers[dependency]

    def snapshot(self) -> list[dict[str, Any]]:
        return [b.snapshot() for b in self.breakers.values()]
