"""The small interfaces the pipeline calls, and the errors backends raise.

Backends speak only these types, so provider SDK types never leak into the pipeline.
Generation is a long-running operation: `start` returns the operation name (stored
on the request at once) and `poll` reads its state; after a restart, polling resumes
from the stored name alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from service.corpus.rows import RetrievedChunk
from service.errors import ReeltraceError
from service.video_request import VideoRequest


class BackendError(ReeltraceError):
    """A call to an external dependency failed."""

    status_code = 502
    error = "backend_error"
    retryable = False

    def __init__(self, detail: str, *, code: str | int | None = None, retryable: bool | None = None) -> None:
        super().__init__(detail, code=code)
        self.code = code
        if retryable is not None:
            self.retryable = retryable


class QuotaExceeded(BackendError):
    """429 / RESOURCE_EXHAUSTED: retry later, with backoff."""

    error = "quota_exceeded"
    retryable = True


class TransientBackendError(BackendError):
    """5xx / UNAVAILABLE / a dropped connection: worth retrying."""

    error = "transient_backend_error"
    retryable = True


class InvalidBackendRequest(BackendError):
    """4xx other than 429: retrying the same call cannot help."""

    error = "invalid_backend_request"
    retryable = False


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One generation start: the request as submitted, and what this start adds to it."""

    request_id: uuid.UUID
    correlation_id: str
    video: VideoRequest
    """Duration, aspect ratio, resolution, audio, samples, seed, negative prompt, ..."""
    prompt: str
    """What the model is asked: the request's prompt (a lesson's script follows it)."""
    output_prefix: str
    """Where outputs go: the request's gcs_prefix (`gs://bucket/.../<id>/` or `local://...`)."""
    idempotency_key: str | None = None
    """`<request id>:<attempt>`; backends that can deduplicate starts honour it."""
    person_generation: str | None = None
    """Veo's personGeneration, when an operator sets it (no request field sets it)."""

    @property
    def sample_count(self) -> int:
        return self.video.sample_count or 1


class OperationState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    FILTERED = "filtered"


@dataclass(frozen=True, slots=True)
class GeneratedVideo:
    uri: str
    mime_type: str = "video/mp4"


@dataclass(frozen=True, slots=True)
class OperationStatus:
    state: OperationState
    videos: tuple[GeneratedVideo, ...] = ()
    error_code: str | int | None = None
    error_message: str | None = None
    retryable: bool = False
    filtered_reasons: tuple[str, ...] = ()
    filtered_count: int = 0

    @classmethod
    def running(cls) -> OperationStatus:
        return cls(OperationState.RUNNING)

    @classmethod
    def succeeded(cls, videos: list[GeneratedVideo]) -> OperationStatus:
        return cls(OperationState.SUCCEEDED, videos=tuple(videos))

    @classmethod
    def failed(cls, code: str | int | None, message: str, *, retryable: bool = False) -> OperationStatus:
        return cls(OperationState.FAILED, error_code=code, error_message=message, retryable=retryable)

    @classmethod
    def filtered(cls, reasons: list[str], count: int) -> OperationStatus:
        return cls(OperationState.FILTERED, filtered_reasons=tuple(reasons), filtered_count=count)


@runtime_checkable
class GenerationBackend(Protocol):
    name: str
    provider: str
    """The `gen_ai.provider.name` of spans, e.g. `gcp.vertex_ai`."""
    model: str

    async def start(self, request: GenerationRequest) -> str:
        """Start the long-running operation and return its full name."""
        ...

    async def poll(self, operation_name: str) -> OperationStatus: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StoredObject:
    uri: str
    size: int
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class StorageBackend(Protocol):
    name: str

    def prefix_for(self, request_id: uuid.UUID) -> str:
        """The per-request output prefix (stored as `gcs_prefix`), ending in `/`."""
        ...

    async def put(self, uri: str, data: bytes, content_type: str) -> StoredObject: ...

    async def list(self, prefix: str) -> list[StoredObject]: ...

    async def url_for(self, uri: str) -> str:
        """A URL a client can download the object from (public or signed)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class RetrievalBackend(Protocol):
    name: str

    async def retrieve(
        self,
        topic: str,
        k: int = 5,
        *,
        objective: str | None = None,
        query_embedding: Sequence[float] | None = None,
    ) -> list[RetrievedChunk]:
        """The `k` best passages on `topic` (ranked with the `objective` too), best first; fused
        with vector search given the query's embedding."""
        ...


@runtime_checkable
class ScriptBackend(Protocol):
    name: str
    provider: str
    model: str

    async def write_script(self, topic: str, objective: str | None, context: list[str]) -> str: ...
