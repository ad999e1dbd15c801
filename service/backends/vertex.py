"""Veo on Vertex AI through google-genai: start a long-running operation, poll it by name.

`start` sends `predictLongRunning` with the request's parameters and
`storageUri` = the request's output prefix (`gs://<bucket>/<prefix>/<request id>/`),
so Veo writes the videos to Cloud Storage itself; it returns the full operation name,
which encodes project, location and model. `poll` sends `fetchPredictOperation` for
that name alone, so a restarted worker resumes from the stored name with a fresh
client. Errors are classified (quota, transient, invalid) and never retried here:
the pipeline owns retries and the circuit breaker.
"""

from __future__ import annotations

import structlog
from google import genai
from google.genai import types

from service.backends.base import (
    BackendError,
    GeneratedVideo,
    GenerationRequest,
    InvalidBackendRequest,
    OperationStatus,
)
from service.backends.google_clients import PROVIDER, classify_error, genai_client
from service.sanitize import sanitize_error
from service.settings import Settings

log = structlog.get_logger("reeltrace.vertex")

# google.rpc codes of a finished operation that a fresh attempt may get past:
# RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE.
RETRYABLE_OPERATION_CODES = frozenset({8, 10, 14})


class VertexGeneration:
    name = "vertex"
    provider = PROVIDER

    def __init__(self, client: genai.Client, *, model: str) -> None:
        self._client = client
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> VertexGeneration:
        return cls(genai_client(settings), model=settings.veo_model)

    @staticmethod
    def config_for(request: GenerationRequest) -> types.GenerateVideosConfig:
        """The request's parameters in SDK form (sent as Veo's `parameters` object)."""
        video = request.video
        return types.GenerateVideosConfig(
            number_of_videos=request.sample_count,
            duration_seconds=video.duration_seconds,
            aspect_ratio=video.aspect_ratio,
            resolution=video.resolution,
            generate_audio=video.generate_audio,
            negative_prompt=video.negative_prompt,
            seed=video.seed,
            person_generation=request.person_generation,
            output_gcs_uri=request.output_prefix,
        )

    async def start(self, request: GenerationRequest) -> str:
        if not request.output_prefix.startswith("gs://"):
            # Without storageUri Veo returns the videos inline in the operation; this
            # service always has Veo write them to Cloud Storage.
            raise InvalidBackendRequest(
                f"Veo writes to Cloud Storage; the output prefix must be gs://, got {request.output_prefix}",
                code="invalid_output_prefix",
            )
        try:
            operation = await self._client.aio.models.generate_videos(
                model=self.model,
                source=types.GenerateVideosSource(prompt=request.prompt),
                config=self.config_for(request),
            )
        except Exception as exc:
            raise classify_error(exc, "Veo predictLongRunning") from exc
        if not operation.name:
            raise BackendError("Veo predictLongRunning answered without an operation name", code="UNKNOWN")
        log.info(
            "veo_operation_started",
            operation_name=operation.name,
            model=self.model,
            request_id=str(request.request_id),
            correlation_id=request.correlation_id,
        )
        return operation.name

    async def poll(self, operation_name: str) -> OperationStatus:
        if "/operations/" not in operation_name:
            raise InvalidBackendRequest(f"not a Vertex AI operation name: {operation_name}", code=404)
        # The SDK derives the model's route from the operation name alone.
        pending = types.GenerateVideosOperation.model_validate({"name": operation_name})
        try:
            operation = await self._client.aio.operations.get(pending)
        except Exception as exc:
            raise classify_error(exc, "Veo fetchPredictOperation") from exc
        return status_of(operation)

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        self._client.close()


def status_of(operation: types.GenerateVideosOperation) -> OperationStatus:
    """Map a Veo operation to the backend-neutral status."""
    if not operation.done:
        return OperationStatus.running()
    if operation.error:
        code = operation.error.get("code")
        message = sanitize_error(str(operation.error.get("message") or "Veo operation failed"))
        return OperationStatus.failed(code, message, retryable=code in RETRYABLE_OPERATION_CODES)
    response = operation.response or operation.result
    generated = (response.generated_videos if response else None) or []
    videos = [
        GeneratedVideo(uri=g.video.uri, mime_type=g.video.mime_type or "video/mp4")
        for g in generated
        if g.video is not None and g.video.uri
    ]
    if videos:
        return OperationStatus.succeeded(videos)
    filtered_count = (response.rai_media_filtered_count if response else None) or 0
    reasons = [sanitize_error(r) for r in ((response.rai_media_filtered_reasons if response else None) or [])]
    if filtered_count or reasons:
        return OperationStatus.filtered(reasons, filtered_count)
    if generated:
        return OperationStatus.failed(
            "NO_OUTPUT_URI", "Veo returned videos inline instead of in Cloud Storage"
        )
    return OperationStatus.failed("NO_VIDEOS", "Veo finished without videos or a filter reason")
