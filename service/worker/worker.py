"""The worker: claims requests from PostgreSQL and runs them, many at once.

One asyncio process holds up to `REELTRACE_WORKER_CONCURRENCY` requests in flight
(generations mostly wait on polling, so hundreds fit in one process). Each run holds
its claim's generation as the fence of its writes; leases are renewed under it by a
heartbeat (and before each external call), and a run whose claim is lost (this
process stalled or was cut off past its lease, and another worker took the request)
is cancelled here. The watchdog's endings take the claim too. On shutdown,
unfinished requests are handed over at once (their leases expire) so another worker
resumes them.

Alongside, the worker runs the stuck-request watchdog and the oldest-request-age
gauge (the journal replayer and retention are in `service.background`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from service.background import every
from service.errors import ClaimLost, DatabaseUnavailable, InvalidStatusTransition
from service.pipeline.breaker import BreakerBoard
from service.pipeline.breaker_repository import BreakerRepository
from service.pipeline.definitions import PIPELINES
from service.pipeline.run_state import WorkItem
from service.pipeline.runner import PipelineRunner
from service.request_states import RequestStatus
from service.runtime import Runtime
from service.tracking.fence import Claim, holding
from service.webhooks.sweep import DeliverySweep
from service.worker.repository import WorkRepository
from telemetry.correlation import request_context
from telemetry.metrics import get_metrics
from telemetry.tracing import untraced

log = structlog.get_logger("reeltrace.worker")

CLAIM_BATCH = 100
# A request whose runs keep dying (a crash loop) is failed instead of claimed forever.
MAX_CLAIMS = 5
# How far back the watchdog looks for ended requests whose notification never ran.
UNNOTIFIED_WINDOW_SECONDS = 3600.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        runner: PipelineRunner,
        *,
        worker_id: str | None = None,
        breakers: BreakerBoard | None = None,
    ) -> None:
        self.runtime = runtime
        self.breakers = breakers
        self.breaker_repository = BreakerRepository(runtime.database)
        self.settings = runtime.settings
        self.runner = runner
        self.worker_id = worker_id or default_worker_id()
        self.repo = WorkRepository(runtime.database)
        # Callback deliveries due for another attempt, whichever run enqueued them.
        self.webhooks = DeliverySweep(runner.bodies.notifications)
        self.active: dict[uuid.UUID, asyncio.Task[None]] = {}
        # The claim each active run holds (its fence), by request.
        self.claims: dict[uuid.UUID, Claim] = {}
        # Every run task until it has ended, including a run that has left `active` and
        # is still releasing its lease: shutdown waits for those too, so no statement of
        # this worker is still running when the process closes its connection pool.
        self._runs: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._deferring = False  # claims wait for the journal (logged once per wait)

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker_started", worker_id=self.worker_id, concurrency=self.settings.worker_concurrency)
        loops = [
            every(self.settings.heartbeat_seconds, self.heartbeat, stop),
            every(self.settings.watchdog_interval_seconds, self.watchdog, stop),
            every(self.settings.worker_poll_seconds, self.webhooks.sweep, stop),
        ]
        background = [asyncio.create_task(loop) for loop in loops]
        try:
            await self._claim_loop(stop)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.webhooks.close()
            await self._shutdown()
        log.info("worker_stopped", worker_id=self.worker_id)

    def wake(self) -> None:
        """Claim now instead of at the next poll (e.g. after a submission in this process)."""
        self._wake.set()

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()  # before the claim: a wake-up during it is not lost
            claimed = await self.claim_once()
            if claimed < CLAIM_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait(stop), timeout=self.settings.worker_poll_seconds)

    async def _wait(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def claim_once(self) -> int:
        capacity = self.settings.worker_concurrency - len(self.active)
        # Claim no more than the runs can start on soon: free database permits plus one
        # round of them queued. Runs waiting on polls hold none, so thousands of slow
        # generations still fit; but a backlog of quick ones is left to other workers
        # instead of waiting here under this worker's leases.
        gate = self.runner.gate
        limit = min(capacity, CLAIM_BATCH, gate.room() + gate.permits)
        if limit <= 0:
            return 0
        if self._journal_pending():
            return 0
        sent = time.monotonic()
        try:
            items = await self.repo.claim(self.worker_id, limit, self.settings.lease_seconds)
        except DatabaseUnavailable:
            log.warning("claim_failed", reason="PostgreSQL unreachable")
            return 0
        self._start_runs(items, sent)
        return len(items)

    def _journal_pending(self) -> bool:
        """True while tracking writes wait in the journal: claims and watchdog sweeps wait too.

        Those writes may have moved or ended the very requests the database still shows
        open (a run that finished during an outage): claimed before the replay, such a
        request would run again, repeating its stages and its callback.
        """
        # Read from the files, not the in-memory state: the writes may be another
        # process's (the API's, journaled while this worker saw PostgreSQL up).
        pending = self.runtime.journal.refresh()
        if pending and not self._deferring:
            log.warning(
                "claims_deferred", worker_id=self.worker_id, reason="tracking journal has pending writes"
            )
        elif self._deferring and not pending:
            log.info("claims_resumed", worker_id=self.worker_id)
        self._deferring = pending
        return pending

    def _start_runs(self, items: list[WorkItem], claimed_at: float) -> None:
        """Run each claimed request; `claimed_at` (time.monotonic()) is when the claim was sent."""
        for item in items:
            if item.id in self.active:
                # This process stalled past its own lease and claimed a request it is
                # still running: the lease is ours again, and one run of it is enough.
                # The claim moved the fence: the run goes on under the new generation.
                log.warning("reclaimed_own_request", request_id=str(item.id), worker_id=self.worker_id)
                claim = self.claims.get(item.id)
                if claim is not None:
                    claim.generation = item.claim_generation
                    claim.confirmed_at = claimed_at
                continue
            claim = Claim(item.id, item.claim_generation, confirmed_at=claimed_at)
            task = asyncio.create_task(self._run_one(item, claim), name=f"request-{item.id}")
            claim.task = task
            self.claims[item.id] = claim
            self.active[item.id] = task
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)

    async def claim_unnotified(self) -> int:
        """Take over ended requests whose run died before its notification stage."""
        capacity = self.settings.worker_concurrency - len(self.active)
        if capacity <= 0 or self._journal_pending():
            return 0
        sent = time.monotonic()
        items = await self.repo.claim_unnotified(
            self.worker_id, min(capacity, CLAIM_BATCH), self.settings.lease_seconds, UNNOTIFIED_WINDOW_SECONDS
        )
        self._start_runs(items, sent)
        return len(items)

    async def _run_one(self, item: WorkItem, claim: Claim) -> None:
        release = True
        # Ended here without running its notification stage (abandoned, or ended under
        # the run by the watchdog or an operator): an expired lease leaves it to the sweep.
        unnotified = False
        try:
            with holding(claim):
                if item.claims > MAX_CLAIMS and not item.status.is_terminal:
                    await self._abandon(item)
                    unnotified = True
                else:
                    unnotified = await self.runner.run(item) is None
        except asyncio.CancelledError:
            # Shutdown or a lost lease: leave the lease to _shutdown / the new owner.
            release = False
            raise
        except DatabaseUnavailable:
            log.warning("run_interrupted", request_id=str(item.id), reason="PostgreSQL unreachable")
        except ClaimLost:
            log.warning("run_interrupted", request_id=str(item.id), reason="claim taken over")
        except Exception:
            log.exception("run_crashed", request_id=str(item.id), correlation_id=item.correlation_id)
        finally:
            self.active.pop(item.id, None)
            self.claims.pop(item.id, None)
            if release and not claim.lost and not claim.released:
                held = {item.id: claim.generation}
                with contextlib.suppress(DatabaseUnavailable):
                    if unnotified:
                        await self.repo.hand_over(self.worker_id, held)
                    else:
                        await self.repo.release(self.worker_id, held)
            self.wake()  # room for another request: claim now, not at the next poll

    async def _abandon(self, item: WorkItem) -> None:
        with request_context(request_id=item.id, correlation_id=item.correlation_id):
            tracker = self.runtime.tracker
            if item.status.value == "pending":
                await tracker.start_request(item.id)
            await tracker.fail_request(
                item.id,
                f"abandoned after {item.claims - 1} runs ended without a result",
                error_details={"claims": item.claims},
            )

    async def heartbeat(self) -> None:
        """Renew this worker's leases (cancelling runs whose lease is lost); publish its breakers."""
        if self.breakers is not None:
            with untraced():
                await self.breaker_repository.publish(self.worker_id, self.breakers.snapshot())
        claims = dict(self.claims)
        held = await self.repo.heartbeat(
            self.worker_id, {rid: c.generation for rid, c in claims.items()}, self.settings.lease_seconds
        )
        for lost in set(claims) - held:
            task = self.active.get(lost)
            if task is not None and not task.done():
                log.warning("lease_lost", request_id=str(lost), worker_id=self.worker_id)
                claims[lost].lose("heartbeat refused")  # cancels the run

    async def watchdog(self) -> None:
        """End requests stuck past their budget as `timeout`; publish the oldest ages; take
        over the notifications of runs that died after ending their request."""
        await self.claim_unnotified()
        metrics = get_metrics()
        with untraced():
            ages = await self.runtime.queries.oldest_active_ages()
        for status, age in ages.items():
            metrics.oldest_request_age.labels(status=status).set(age)
        if self._journal_pending():
            return  # the statuses it would judge may be stale until the journal is replayed
        tracker = self.runtime.tracker
        for pipeline in PIPELINES.values():
            budget = pipeline.budget_seconds(self.settings.generation_timeout_seconds)
            for row in await self.repo.stuck(pipeline.name, budget):
                stage = row["current_stage"]
                fence = row["claim_generation"]

                async def expire_generating(
                    rid: uuid.UUID, msg: str, stage: str | None = stage, fence: int = fence
                ) -> object:
                    # Fenced on the generation it judged, taking the claim from the run.
                    return await tracker.timeout_request(
                        rid, msg, error_stage=stage, error_details={"code": "watchdog"},
                        fence=fence, take_claim=True, close_stages=True,
                    )  # fmt: skip

                await self._expire(
                    row,
                    f"request exceeded the {pipeline.name} pipeline budget of {budget:.0f} s"
                    f" (stuck in {stage or 'no stage'})",
                    expire_generating,
                )
        budget = self.settings.pending_budget_seconds
        for row in await self.repo.stuck(None, budget):

            async def expire_pending(
                rid: uuid.UUID, msg: str, fence: int = row["claim_generation"]
            ) -> object:
                # The state machine has no pending -> timeout edge: start, then time out.
                await tracker.transition(rid, RequestStatus.GENERATING, fence=fence)
                return await tracker.timeout_request(
                    rid, msg, error_stage="queue", error_details={"code": "watchdog"},
                    fence=fence, take_claim=True, close_stages=True,
                )  # fmt: skip

            await self._expire(row, f"request waited in the queue longer than {budget:.0f} s", expire_pending)

    async def _expire(
        self, row: dict[str, Any], message: str, end: Callable[[uuid.UUID, str], Awaitable[object]]
    ) -> None:
        rid: uuid.UUID = row["id"]
        log.warning("request_stuck", request_id=str(rid), age_seconds=row["age_seconds"], reason=message)
        try:
            await end(rid, message)
        except (InvalidStatusTransition, ClaimLost):
            return  # ended or claimed anew meanwhile: its current run carries on (and notifies)
        await self.repo.owe_notification(self.worker_id, rid)
        claim = self.claims.get(rid)
        if claim is not None:
            claim.lose("ended by the watchdog")  # cancels the run here

    async def _shutdown(self) -> None:
        unfinished = {rid: c.generation for rid, c in self.claims.items() if not c.lost}
        for task in self.active.values():
            task.cancel()
        # Bounded by one lease: by then every lease of this worker has expired on its own,
        # so a release or hand-over stuck behind a row lock held elsewhere is not worth
        # holding the process up for (another worker takes the requests either way).
        deadline = asyncio.get_running_loop().time() + self.settings.lease_seconds
        # Runs already releasing their lease are not in `active`; they finish, not cancelled.
        if self._runs:
            _, stuck = await asyncio.wait(self._runs, timeout=self.settings.lease_seconds)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
            if stuck:
                log.warning("worker_runs_abandoned", count=len(stuck), worker_id=self.worker_id)
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
        try:
            with contextlib.suppress(DatabaseUnavailable):
                # Expire, not clear, the leases: an ended request whose notification was cut
                # off must still be found by another worker's watchdog.
                await asyncio.wait_for(self.repo.hand_over(self.worker_id, unfinished), remaining)
        except TimeoutError:
            log.warning("worker_hand_over_abandoned", count=len(unfinished), worker_id=self.worker_id)
            return
        if unfinished:
            log.info("worker_released", count=len(unfinished))
