"""Knowing that PostgreSQL is down, so statements fail at once instead of queueing.

A pool that loses its server keeps reconnecting in the background, with backoff,
while callers wait up to its timeout for a connection. Tracking must not wait: a
write that cannot be made is journaled, and the request goes on. So the first sign
of an outage (a connection that broke under a statement, or a connection the pool
could not open) marks the database down. While it is down, a statement first probes
with a connection of its own (callers at the same moment share one probe): refused,
it fails as `DatabaseUnavailable` in about the connect time, as it would have with a
connection made on demand; accepted, the database is up again, the pool is replaced
by a fresh one (the old one's connections are dead and its reconnection backoff
would keep callers waiting) and the statement runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import structlog

from service.db.errors import UNREACHABLE_DETAIL
from service.errors import DatabaseUnavailable

log = structlog.get_logger("reeltrace.db")


class Outage:
    """Whether the database is known to be down, and the probe that finds it back."""

    def __init__(
        self,
        conninfo: str,
        connect_kwargs: dict[str, Any],
        on_back: Callable[[], Awaitable[None]],
    ) -> None:
        self.down = False
        self._conninfo = conninfo
        self._connect_kwargs = connect_kwargs
        self._on_back = on_back
        self._lost: asyncio.Event | None = None
        self._probe: asyncio.Future[bool] | None = None

    def lost(self, reason: str) -> None:
        """Mark the database down (idempotent); callers waiting for a connection give up."""
        if not self.down:
            self.down = True
            log.warning("database_unreachable", reason=reason)
        self._event().set()

    async def wait_lost(self) -> None:
        """Return once the database is marked down."""
        await self._event().wait()

    async def recover(self) -> None:
        """Return once the database answers again; raise DatabaseUnavailable while it does not."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._try())
        # Shielded: a caller cancelled mid-probe leaves it to the others (and closes nothing).
        if not await asyncio.shield(self._probe):
            raise DatabaseUnavailable(UNREACHABLE_DETAIL)

    async def _try(self) -> bool:
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._connect_kwargs)
        except (psycopg.Error, OSError):
            return False
        await conn.close()
        if self.down:
            await self._on_back()
            self.down = False
            self._event().clear()
            log.info("database_reachable")
        return True

    def _event(self) -> asyncio.Event:
        # Made on first use, inside the loop that uses it.
        if self._lost is None:
            self._lost = asyncio.Event()
        return self._lost
