"""Running a request in this process when it could not be queued in PostgreSQL.

If PostgreSQL is unreachable at submission, the request cannot wait in the queue,
so the API process runs it itself (graceful degradation: the user's request goes
on). Every tracking write of that run goes to the journal and is replayed later;
the journaled create carries a lease, so workers leave the request alone meanwhile.
"""

from __future__ import annotations

import asyncio

import structlog

from service.pipeline.run_state import WorkItem
from service.pipeline.runner import PipelineRunner
from service.request_states import RequestStatus
from service.tracking.creation import CreatedRequest
from service.tracking.fence import Claim, holding
from service.video_request import VideoRequest
from telemetry.tracing import current_trace_ids

log = structlog.get_logger("reeltrace.local_runs")


class LocalRuns:
    def __init__(self, runner: PipelineRunner) -> None:
        self.runner = runner
        self.tasks: set[asyncio.Task[RequestStatus | None]] = set()

    async def __call__(self, new: VideoRequest, created: CreatedRequest) -> None:
        trace_id, traceparent = current_trace_ids()
        item = WorkItem(
            id=created.id,
            correlation_id=created.correlation_id,
            request=new,
            status=RequestStatus.PENDING,
            operation_name=None,
            gcs_prefix=None,
            trace_id=trace_id,
            traceparent=traceparent,
            created_at=created.created_at,
        )
        log.warning("running_in_process", request_id=str(created.id), reason="request could not be queued")
        task = asyncio.create_task(self._run(item), name=f"local-{created.id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, item: WorkItem) -> RequestStatus | None:
        # Generation 0: the request was never claimed. Once its create is replayed, a
        # worker that takes it over (its lease expired) fences this run out.
        with holding(Claim(item.id, 0)):
            return await self.runner.run(item)

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
