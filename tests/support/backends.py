"""Generation backends for tests: the simulated one with failures injected at the call."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from service.backends.base import (
    BackendError,
    GenerationBackend,
    GenerationRequest,
    OperationState,
    OperationStatus,
    TransientBackendError,
)
from service.backends.factory import Backends, build_backends
from service.settings import Settings
from service.video_request import VideoRequest


class FlakyGeneration:
    """Delegates to a real backend, but its `start` raises `error` while `failures_left` > 0.

    `broken = True` makes every start fail, until set back to False; a failing start
    takes `fail_after` seconds to fail.
    """

    def __init__(
        self,
        inner: GenerationBackend,
        failures: int = 0,
        error: BackendError | None = None,
        fail_after: float = 0.0,
    ):
        self.inner = inner
        self.name = inner.name
        self.provider = inner.provider
        self.model = inner.model
        self.failures_left = failures
        self.broken = False
        self.error = error or TransientBackendError("503 from the model endpoint", code=503)
        self.fail_after = fail_after
        self.start_calls = 0
        self.poll_calls = 0

    async def start(self, request: GenerationRequest) -> str:
        self.start_calls += 1
        if self.broken or self.failures_left > 0:
            self.failures_left -= 1
            await asyncio.sleep(self.fail_after)
            raise self.error
        return await self.inner.start(request)

    async def poll(self, operation_name: str) -> OperationStatus:
        self.poll_calls += 1
        return await self.inner.poll(operation_name)

    async def aclose(self) -> None:
        await self.inner.aclose()


def flaky_backends(
    settings: Settings,
    failures: int = 0,
    error: BackendError | None = None,
    fail_after: float = 0.0,
    engine: AsyncEngine | None = None,
) -> Backends:
    """The configured backends, with a FlakyGeneration around the generation backend.

    Without the `engine` of a database to search the corpus in, retrieval is the
    simulated one (chosen here explicitly): these runs test generation, not lessons.
    """
    if engine is None:
        settings = settings.model_copy(update={"retrieval_backend": "simulated"})
    backends = build_backends(settings, engine)
    flaky = FlakyGeneration(backends.generation, failures, error, fail_after)
    return dataclasses.replace(backends, generation=flaky)


class OperationFailsOnce(FlakyGeneration):
    """The first operation it polls to the end finishes failed with a retryable code
    (Vertex's UNAVAILABLE, 14), as Veo reports an operation that ran and then broke;
    later operations finish as the real backend says."""

    def __init__(self, inner: GenerationBackend) -> None:
        super().__init__(inner)
        self.failed_operation: str | None = None

    async def poll(self, operation_name: str) -> OperationStatus:
        status = await super().poll(operation_name)
        if status.state == OperationState.RUNNING:
            return status
        if self.failed_operation in (None, operation_name):
            self.failed_operation = operation_name
            return OperationStatus.failed(14, "The service is currently unavailable.", retryable=True)
        return status


def failing_once_backends(settings: Settings) -> Backends:
    """The configured backends, whose first generation operation fails after running
    (retrieval simulated, chosen explicitly: these runs bill generation, not lessons)."""
    settings = settings.model_copy(update={"retrieval_backend": "simulated"})
    backends = build_backends(settings, None)
    return dataclasses.replace(backends, generation=OperationFailsOnce(backends.generation))


def generation_request(**fields: Any) -> GenerationRequest:
    """A generation start from flat fields: those of the request value go to `video`.

    The request value is not checked, so a test can hand a backend what the API refuses.
    """
    video = {
        k: fields.pop(k)
        for k in list(fields)
        if k in VideoRequest.model_fields and k not in ("prompt", "request_id")
    }
    video |= {"user_id": "tester", "prompt": fields["prompt"]}
    return GenerationRequest(video=VideoRequest.model_construct(**video), **fields)
