"""The delivery sweep: each worker claims due callback deliveries and attempts them.

Deliveries are rows, so they outlive every process: after a restart, a crash or a
lost claim, the next sweep of any worker finds what is due. Each sweep claims only
as many as it has room for, and attempts them concurrently, so a receiver that
hangs until the timeout holds one slot per attempt (at most `PER_HOST_IN_FLIGHT` of
them), never the sweep itself.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from service.webhooks.delivery import Notifications
from service.webhooks.repository import Delivery
from telemetry.tracing import untraced

log = structlog.get_logger("reeltrace.webhooks")

# Attempts one worker holds in flight, and attempts to one receiver host across workers.
SWEEP_CAPACITY = 100
PER_HOST_IN_FLIGHT = 8


class DeliverySweep:
    def __init__(
        self,
        notifications: Notifications,
        *,
        capacity: int = SWEEP_CAPACITY,
        per_host: int = PER_HOST_IN_FLIGHT,
    ) -> None:
        self.notifications = notifications
        self.capacity = capacity
        self.per_host = per_host
        self.in_flight: set[asyncio.Task[None]] = set()

    async def sweep(self) -> int:
        """Claim the due deliveries there is room for and start their attempts; returns how many."""
        room = self.capacity - len(self.in_flight)
        if room <= 0:
            return 0
        with untraced():  # the claim is housekeeping; each attempt is traced on its own
            claimed = await self.notifications.repository.claim_due(
                room, self.per_host, self.notifications.claim_seconds
            )
        for delivery in claimed:
            task = asyncio.create_task(self._attempt(delivery), name=f"webhook-{delivery.id}")
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
        return len(claimed)

    async def _attempt(self, delivery: Delivery) -> None:
        try:
            await self.notifications.attempt(delivery)
        except Exception:
            # The claim expires and a later sweep tries again: nothing is lost.
            log.exception("webhook_attempt_crashed", delivery_id=str(delivery.id))

    async def drain(self) -> None:
        """Wait for the attempts in flight (used by tests and shutdown)."""
        while self.in_flight:
            await asyncio.gather(*list(self.in_flight), return_exceptions=True)

    async def close(self) -> None:
        """Stop the attempts in flight; their claims expire and another sweep retries them."""
        for task in self.in_flight:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self.in_flight, return_exceptions=True)
