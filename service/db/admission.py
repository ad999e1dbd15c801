"""Admission of runs to the database: a process's runs never queue on its connection pool.

A worker holds up to a thousand runs in flight, but its pool has a few dozen
connections. Were every run free to write at once (a backlog claimed at start-up,
or many generations finishing together), writes would wait in the pool past its
timeout, and a timed-out write is taken for PostgreSQL being down: it goes to the
journal, and so do all later ones. So a run must be admitted (one permit per
connection the pool can open) for its database work, and it gives its permit back
while it waits on anything else: an external call, or the sleep between two polls
of its generation. Runs beyond the permits wait here, in order, with no timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar


class RunGate:
    """A semaphore whose returning runs go before new ones.

    A run coming back from a wait is part-way through a stage (whose attempt has a
    timeout), so it is let in before runs that have not started yet. Permits are
    handed straight to the next waiter: nobody barges past the queue.
    """

    def __init__(self, permits: int) -> None:
        self.permits = permits
        self._free = permits
        self._returning: deque[asyncio.Future[None]] = deque()
        self._new: deque[asyncio.Future[None]] = deque()

    def room(self) -> int:
        """Free permits, less the runs queued for one (negative when runs wait)."""
        return self._free - len(self._returning) - len(self._new)

    async def acquire(self, *, returning: bool = False) -> None:
        if self._free > 0 and not self._returning and not self._new:
            self._free -= 1
            return
        queue = self._returning if returning else self._new
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
            else:
                self.release()  # handed over just as the wait was cancelled: pass it on
            raise

    def release(self) -> None:
        for queue in (self._returning, self._new):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold a permit for the run in this block (except inside `outside_gate`)."""
        permit = _Permit(self)
        await permit.acquire()
        token = _current.set(permit)
        try:
            yield
        finally:
            _current.reset(token)
            permit.release()


class _Permit:
    def __init__(self, gate: RunGate) -> None:
        self.gate = gate
        self.held = False

    async def acquire(self, *, returning: bool = False) -> None:
        await self.gate.acquire(returning=returning)
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.gate.release()


_current: ContextVar[_Permit | None] = ContextVar("reeltrace_run_permit", default=None)


@asynccontextmanager
async def outside_gate() -> AsyncIterator[None]:
    """Give the current run's permit back for this block (a wait that needs no database)."""
    permit = _current.get()
    if permit is None or not permit.held:
        yield
        return
    permit.release()
    try:
        yield
    finally:
        # If cancelled while waiting here, the permit is not held and is not released twice.
        await permit.acquire(returning=True)
