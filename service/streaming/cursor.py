"""Where a stream is in the event log.

Event ids come from an identity column, assigned at insert; a transaction that got
a lower id can commit just after one with a higher id. A stream that only read
`id > highest sent` would skip such a late row, so the cursor reads again from
where it stood `lookback` seconds ago and skips the ids it already sent.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class EventCursor:
    def __init__(
        self, start: int, *, lookback: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.high = start
        self.lookback = lookback
        self.clock = clock
        self._marks: deque[tuple[float, int]] = deque()  # (when the high moved, the high before)
        self._sent: set[int] = set()

    def horizon(self) -> int:
        """Read events after this id (and skip `sent`)."""
        cutoff = self.clock() - self.lookback
        while self._marks and self._marks[0][0] < cutoff:
            self._marks.popleft()
        low = self._marks[0][1] if self._marks else self.high
        self._sent = {i for i in self._sent if i > low}
        return low

    @property
    def sent(self) -> frozenset[int]:
        return frozenset(self._sent)

    def is_new(self, event_id: int) -> bool:
        return event_id not in self._sent and event_id > (self._marks[0][1] if self._marks else self.high)

    def advance(self, event_id: int) -> None:
        if event_id > self.high:
            self._marks.append((self.clock(), self.high))
            self.high = event_id
        self._sent.add(event_id)
