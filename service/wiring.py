"""The one place the service is put together: each process's parts, built from settings.

`build_pipeline` assembles what runs requests (backends, breakers, the callback
notifier, the stage bodies and the runner) on a `Runtime`.

`reeltrace serve` runs the API on `ServiceParts` (runtime, key verifier, event hub,
session signer, and from its `Processing` the breakers, the in-process runner of
degraded submissions and, unless `--no-worker`, a worker) beside the periodic jobs.
`reeltrace worker` runs a `Processing` with a worker and the periodic jobs, and no API.
Routes never look the parts up by name: they receive them through the typed
dependencies of `service/api/deps.py`, which read the one `ServiceParts` of the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from service.auth.keys import KeyVerifier
from service.auth.repository import ApiKeyRepository
from service.auth.sessions import SessionSigner, load_or_create_secret
from service.backends.factory import Backends, build_backends
from service.backends.webhook import WebhookNotifier
from service.backends.webhook import load_or_create_secret as load_or_create_webhook_secret
from service.background import background_jobs
from service.db.urls import libpq_dsn
from service.pipeline.breaker import BreakerBoard
from service.pipeline.degraded_runs import LocalRuns
from service.pipeline.external_calls import ExternalCalls
from service.pipeline.runner import PipelineRunner
from service.pipeline.stages import StageBodies
from service.runtime import Runtime
from service.settings import Settings
from service.streaming.listener import EventHub
from service.webhooks.delivery import Notifications
from service.webhooks.repository import DeliveryRepository
from service.worker.worker import Worker


@dataclass
class PipelineServices:
    backends: Backends
    breakers: BreakerBoard
    notifier: WebhookNotifier
    runner: PipelineRunner

    async def aclose(self) -> None:
        await self.backends.aclose()
        await self.notifier.aclose()


def build_pipeline(runtime: Runtime, backends: Backends | None = None) -> PipelineServices:
    """What runs requests on `runtime`: its backends (as settings choose, unless given),
    breakers, callback notifier, stage bodies and runner."""
    settings = runtime.settings
    backends = backends or build_backends(settings, runtime.database)
    breakers = BreakerBoard(
        failure_threshold=settings.breaker_failure_threshold, reset_seconds=settings.breaker_reset_seconds
    )
    notifier = WebhookNotifier(
        load_or_create_webhook_secret(settings.webhook_secret, settings.data_dir),
        timeout_seconds=settings.webhook_timeout_seconds,
    )
    calls = ExternalCalls(breakers, runtime.tracker)
    deliveries = DeliveryRepository(
        runtime.database,
        source_service=runtime.tracker.source_service,
        source_host=runtime.tracker.source_host,
    )
    notifications = Notifications(settings, deliveries, notifier, runtime.tracker)
    bodies = StageBodies(settings, backends, calls, runtime.tracker, runtime.queries, notifications)
    runner = PipelineRunner(settings, runtime.tracker, runtime.queries, bodies)
    return PipelineServices(backends, breakers, notifier, runner)


@dataclass(frozen=True, slots=True)
class Processing:
    """What a process runs requests with: the pipeline (backends, breakers, runner), a
    worker or not, and the in-process runner of submissions PostgreSQL could not queue
    (API processes only)."""

    runtime: Runtime
    pipeline: PipelineServices
    worker: Worker | None
    degraded_runner: LocalRuns | None

    @property
    def breakers(self) -> BreakerBoard:
        return self.pipeline.breakers

    def periodic_jobs(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        """The journal replayer, retention and the snapshot export, as settings ask."""
        return background_jobs(self.runtime, stop)

    async def aclose(self) -> None:
        if self.degraded_runner is not None:
            await self.degraded_runner.aclose()
        await self.pipeline.aclose()


def _worker(runtime: Runtime, pipeline: PipelineServices) -> Worker:
    return Worker(runtime, pipeline.runner, breakers=pipeline.breakers)


def assemble_api(runtime: Runtime, *, worker: bool) -> Processing:
    """An API process's pipeline: the degraded runner, and a worker unless `serve --no-worker`."""
    pipeline = build_pipeline(runtime)
    return Processing(
        runtime, pipeline, _worker(runtime, pipeline) if worker else None, LocalRuns(pipeline.runner)
    )


def assemble_worker(runtime: Runtime) -> tuple[Processing, Worker]:
    """A worker process's pipeline and its worker (no degraded runner: it takes no submissions)."""
    pipeline = build_pipeline(runtime)
    worker = _worker(runtime, pipeline)
    return Processing(runtime, pipeline, worker, None), worker


@dataclass(frozen=True, slots=True)
class ServiceParts:
    """Everything the routes are served from. The optional parts are None in a process
    that has none: `serve --no-worker` has no worker, and an app built on a runtime
    alone (a read-only API, as in tests) has no pipeline."""

    settings: Settings
    runtime: Runtime
    keys: KeyVerifier
    hub: EventHub
    session_signer: SessionSigner
    breakers: BreakerBoard | None = None
    degraded_runner: LocalRuns | None = None
    worker: Worker | None = None


def service_parts(settings: Settings, runtime: Runtime, processing: Processing | None = None) -> ServiceParts:
    """The API's parts on `runtime`, with the breakers, degraded runner and worker of
    `processing` when this process runs requests too."""
    return ServiceParts(
        settings=settings,
        runtime=runtime,
        keys=KeyVerifier(ApiKeyRepository(runtime.database), ttl=settings.api_key_cache_seconds),
        hub=EventHub(libpq_dsn(runtime.database_url)),
        session_signer=SessionSigner(load_or_create_secret(settings.data_dir)),
        breakers=None if processing is None else processing.breakers,
        degraded_runner=None if processing is None else processing.degraded_runner,
        worker=None if processing is None else processing.worker,
    )
