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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar


class _Permit:
    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self.semaphore = semaphore
        self.held = False

    async def acquire(self) -> None:
        await self.semaphore.acquire()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.semaphore.release()


_current: ContextVar[_Permit | None] = ContextVar("reeltrace_run_permit", default=None)


class RunGate:
    def __init__(self, permits: int) -> None:
        self.permits = permits
        self._semaphore = asyncio.Semaphore(permits)

    @property
    def waiting(self) -> bool:
        return self._semaphore.locked()

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold a permit for the run in this block (except inside `outside_gate`)."""
        permit = _Permit(self._semaphore)
        await permit.acquire()
        token = _current.set(permit)
        try:
            yield
        finally:
            _current.reset(token)
            permit.release()


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
        await permit.acquire()
