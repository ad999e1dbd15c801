"""The per-user rate limit of one process while PostgreSQL cannot count it.

At submission the limit is counted in PostgreSQL, in the same statement as the
create. While the database is unreachable a submission is journaled and run in the
API process (degraded mode); the limit then holds per process, counted here: every
submission this process accepted (through PostgreSQL or not) within the window.
Another API process counts its own, so with N processes a user may get up to N times
the limit through during an outage.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from service.errors import RateLimited
from service.settings import RateLimit

# Past this many users, those with nothing left in their window are forgotten.
_PRUNE_AT = 10_000


class LocalRateCount:
    """Sliding-window counts of accepted submissions per user, in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._accepted: dict[str, deque[float]] = {}

    def _window(self, user_id: str, limit: RateLimit, now: float) -> deque[float]:
        seen = self._accepted.setdefault(user_id, deque())
        while seen and seen[0] <= now - limit.window_seconds:
            seen.popleft()
        return seen

    def record(self, user_id: str, limit: RateLimit) -> None:
        """Count a submission accepted through PostgreSQL."""
        now = self.clock()
        self._window(user_id, limit, now).append(now)
        self._prune(limit, now)

    def admit(self, user_id: str, limit: RateLimit) -> None:
        """Count a degraded submission, or raise RateLimited (with Retry-After) past the limit."""
        now = self.clock()
        seen = self._window(user_id, limit, now)
        if len(seen) >= limit.limit:
            retry_after = max(1, math.ceil(seen[0] + limit.window_seconds - now))
            raise RateLimited(
                f"rate limit of {limit.limit} requests per {limit.window_seconds} s reached",
                retry_after=retry_after,
            )
        seen.append(now)
        self._prune(limit, now)

    def _prune(self, limit: RateLimit, now: float) -> None:
        if len(self._accepted) <= _PRUNE_AT:
            return
        cutoff = now - limit.window_seconds
        for user in [u for u, seen in self._accepted.items() if not seen or seen[-1] <= cutoff]:
            del self._accepted[user]
