"""The per-process rate limit counted while PostgreSQL cannot count it."""

from __future__ import annotations

import pytest

from service.errors import RateLimited
from service.settings import RateLimit
from service.tracking.local_limit import LocalRateCount


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_past_the_limit_is_refused_with_the_wait_until_a_slot_frees() -> None:
    """The submission past the limit within the window is refused; Retry-After is when the oldest
    counted one leaves the window."""
    clock = Clock()
    count = LocalRateCount(clock)
    limit = RateLimit(2, 60)
    count.record("u", limit)  # accepted through PostgreSQL: counted too
    clock.now += 10
    count.admit("u", limit)
    with pytest.raises(RateLimited) as refused:
        count.admit("u", limit)
    assert refused.value.retry_after == 50


def test_the_window_slides() -> None:
    """Once the oldest submission is older than the window, another is admitted."""
    clock = Clock()
    count = LocalRateCount(clock)
    limit = RateLimit(1, 60)
    count.admit("u", limit)
    clock.now += 60
    count.admit("u", limit)


def test_users_are_counted_apart() -> None:
    """One user's count never refuses another's submission."""
    count = LocalRateCount(Clock())
    limit = RateLimit(1, 60)
    count.admit("u1", limit)
    count.admit("u2", limit)
