"""Assembling the pipeline (backends, breakers, notifier, runner) from settings."""

from __future__ import annotations

from dataclasses import dataclass

from service.backends.factory import Backends, build_backends
from service.backends.webhook import WebhookNotifier, load_or_create_secret
from service.pipeline.breaker import BreakerBoard
from service.pipeline.external_calls import ExternalCalls
from service.pipeline.runner import PipelineRunner
from service.pipeline.stages import StageBodies
from service.runtime import Runtime
from service.webhooks.delivery import Notifications
from service.webhooks.repository import DeliveryRepository


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
    settings = runtime.settings
    backends = backends or build_backends(settings, runtime.database)
    breakers = BreakerBoard(
        failure_threshold=settings.breaker_failure_threshold, reset_seconds=settings.breaker_reset_seconds
    )
    notifier = WebhookNotifier(
        load_or_create_secret(settings.webhook_secret, settings.data_dir),
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
