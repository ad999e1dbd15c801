"""The vertex generation backend: the real google-genai client against the local Vertex fake."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from service.backends.base import (
    BackendError,
    GenerationBackend,
    GenerationRequest,
    InvalidBackendRequest,
    OperationState,
    QuotaExceeded,
    TransientBackendError,
)
from service.backends.vertex import VertexGeneration, status_of
from service.settings import Settings
from tests.service.backends.conftest import PROJECT
from tests.support.backends import generation_request
from tests.support.vertex_fake import FILTER_REASONS, VertexFake

MODEL = "veo-3.1-fast-generate-001"


def make_request(
    prefix: str, prompt: str = "a lighthouse at dusk, waves crashing", **extra: object
) -> GenerationRequest:
    fields: dict[str, object] = {
        "request_id": uuid.uuid4(),
        "correlation_id": "vvd_1760000000000_0a1b2c3d",
        "prompt": prompt,
        "duration_seconds": 8,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "generate_audio": True,
        "output_prefix": prefix,
    }
    fields.update(extra)
    return generation_request(**fields)


@pytest.fixture
async def vertex(google_settings: Settings) -> AsyncIterator[VertexGeneration]:
    backend = VertexGeneration.from_settings(google_settings)
    yield backend
    await backend.aclose()


@pytest.fixture
def prefix(bucket: str) -> str:
    return f"gs://{bucket}/requests/{uuid.uuid4()}/"


def test_implements_the_generation_protocol(vertex: VertexGeneration) -> None:
    """The vertex backend satisfies GenerationBackend and names its provider and model."""
    assert isinstance(vertex, GenerationBackend)
    assert (vertex.name, vertex.provider, vertex.model) == ("vertex", "gcp.vertex_ai", MODEL)


async def test_start_sends_the_documented_request(
    vertex: VertexGeneration, vertex_fake: VertexFake, prefix: str
) -> None:
    """predictLongRunning goes to the v1 model route with Veo's documented field names and values."""
    request = make_request(
        prefix,
        duration_seconds=6,
        aspect_ratio="9:16",
        resolution="1080p",
        generate_audio=False,
        sample_count=2,
        negative_prompt="text overlays",
        seed=4242,
        person_generation="allow_adult",
    )
    await vertex.start(request)
    [sent] = vertex_fake.requests_to("predictLongRunning")
    assert sent.path == (
        f"/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/{MODEL}:predictLongRunning"
    )
    assert sent.body["instances"] == [{"prompt": "a lighthouse at dusk, waves crashing"}]
    assert sent.body["parameters"] == {
        "durationSeconds": 6,
        "aspectRatio": "9:16",
        "resolution": "1080p",
        "generateAudio": False,
        "sampleCount": 2,
        "negativePrompt": "text overlays",
        "seed": 4242,
        "personGeneration": "allow_adult",
        "storageUri": prefix,
    }


async def test_start_leaves_out_unset_optional_parameters(
    vertex: VertexGeneration, vertex_fake: VertexFake, prefix: str
) -> None:
    """Optional parameters the request does not set are not sent, so Veo applies its defaults."""
    await vertex.start(make_request(prefix))
    [sent] = vertex_fake.requests_to("predictLongRunning")
    assert set(sent.body["parameters"]) == {
        "durationSeconds",
        "aspectRatio",
        "resolution",
        "generateAudio",
        "sampleCount",
        "storageUri",
    }


async def test_start_authenticates_with_a_bearer_token(
    vertex: VertexGeneration, vertex_fake: VertexFake, prefix: str
) -> None:
    """Calls carry an Authorization bearer token (a placeholder against a plain-http fake)."""
    await vertex.start(make_request(prefix))
    [sent] = vertex_fake.requests_to("predictLongRunning")
    assert sent.headers["authorization"] == "Bearer fake"


async def test_poll_sends_fetch_predict_operation_with_the_name(
    vertex: VertexGeneration, vertex_fake: VertexFake, prefix: str
) -> None:
    """Polling posts the full operation name to the model's v1 fetchPredictOperation route."""
    name = await vertex.start(make_request(prefix))
    await vertex.poll(name)
    [sent] = vertex_fake.requests_to("fetchPredictOperation")
    assert sent.path == (
        f"/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/{MODEL}:fetchPredictOperation"
    )
    assert sent.body == {"operationName": name}


async def test_success_returns_gs_uris(vertex: VertexGeneration, prefix: str) -> None:
    """A done operation with videos maps to succeeded with the gs:// URIs Veo reported."""
    name = await vertex.start(make_request(prefix, sample_count=2))
    assert (await vertex.poll(name)).state is OperationState.RUNNING
    status = await vertex.poll(name)
    assert status.state is OperationState.SUCCEEDED
    assert [v.mime_type for v in status.videos] == ["video/mp4", "video/mp4"]
    assert all(
        v.uri.startswith(prefix) and v.uri.endswith(f"sample_{i}.mp4") for i, v in enumerate(status.videos)
    )


async def test_operation_error_maps_to_failed_with_sanitized_message(
    vertex: VertexGeneration, prefix: str
) -> None:
    """A done operation with an error maps to failed with its google.rpc code and a secret-free message."""
    name = await vertex.start(make_request(prefix, prompt="[fake:fail] a storm"))
    await vertex.poll(name)
    status = await vertex.poll(name)
    assert status.state is OperationState.FAILED
    assert status.error_code == 3
    assert status.error_message is not None
    assert status.error_message.startswith("Video generation failed")
    assert "ya29" not in status.error_message
    assert status.retryable is False


async def test_filtered_operation_maps_to_filtered_with_reasons(
    vertex: VertexGeneration, prefix: str
) -> None:
    """A done operation with no videos and raiMediaFilteredCount > 0 maps to filtered with the reasons."""
    name = await vertex.start(make_request(prefix, prompt="[fake:filter] a crowd", sample_count=2))
    await vertex.poll(name)
    status = await vertex.poll(name)
    assert status.state is OperationState.FILTERED
    assert status.filtered_count == 2
    assert list(status.filtered_reasons) == FILTER_REASONS
    assert status.videos == ()


async def test_quota_on_start_raises_quota_exceeded(vertex: VertexGeneration, prefix: str) -> None:
    """A 429 RESOURCE_EXHAUSTED answer to the start raises the retryable QuotaExceeded."""
    with pytest.raises(QuotaExceeded) as caught:
        await vertex.start(make_request(prefix, prompt="[fake:quota] a cat"))
    assert caught.value.retryable is True
    assert caught.value.code == 429
    assert "Quota exceeded" in caught.value.detail


async def test_quota_on_poll_raises_quota_exceeded(
    vertex: VertexGeneration, vertex_fake: VertexFake, prefix: str
) -> None:
    """A 429 answer to a poll raises QuotaExceeded too."""
    name = await vertex.start(make_request(prefix))
    vertex_fake.fail_next(429, route="fetchPredictOperation")
    with pytest.raises(QuotaExceeded):
        await vertex.poll(name)


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_server_errors_are_transient(
    vertex: VertexGeneration, vertex_fake: VertexFake, prefix: str, status: int
) -> None:
    """5xx answers raise the retryable TransientBackendError carrying the status."""
    vertex_fake.fail_next(status)
    with pytest.raises(TransientBackendError) as caught:
        await vertex.start(make_request(prefix))
    assert caught.value.code == status
    assert caught.value.retryable is True


@pytest.mark.parametrize("status", [400, 403, 404])
async def test_other_client_errors_are_not_retryable(
    vertex: VertexGeneration, vertex_fake: VertexFake, prefix: str, status: int
) -> None:
    """4xx answers other than 429 raise InvalidBackendRequest, which is not retryable."""
    vertex_fake.fail_next(status)
    with pytest.raises(InvalidBackendRequest) as caught:
        await vertex.start(make_request(prefix))
    assert caught.value.code == status
    assert caught.value.retryable is False


async def test_backend_does_not_retry(vertex: VertexGeneration, vertex_fake: VertexFake, prefix: str) -> None:
    """A failed call is sent once: retries belong to the pipeline, not the backend."""
    vertex_fake.fail_next(503, times=5)
    with pytest.raises(TransientBackendError):
        await vertex.start(make_request(prefix))
    assert len(vertex_fake.requests_to("predictLongRunning")) == 1


async def test_sdk_errors_do_not_escape(
    vertex: VertexGeneration, vertex_fake: VertexFake, prefix: str
) -> None:
    """The raised error is a backend error chained from the SDK's, never the SDK's own type."""
    vertex_fake.fail_next(429)
    with pytest.raises(BackendError) as caught:
        await vertex.start(make_request(prefix))
    assert not isinstance(caught.value, genai_errors.APIError)
    assert isinstance(caught.value.__cause__, genai_errors.ClientError)


async def test_unreachable_endpoint_is_transient(google_settings: Settings, prefix: str) -> None:
    """A refused connection raises TransientBackendError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = google_settings.model_copy(update={"vertex_base_url": f"http://127.0.0.1:{port}"})
    backend = VertexGeneration.from_settings(settings)
    with pytest.raises(TransientBackendError, match="connection failed"):
        await backend.start(make_request(prefix))
    await backend.aclose()


async def test_unknown_operation_is_invalid(vertex: VertexGeneration, prefix: str) -> None:
    """Polling an operation the endpoint does not know raises InvalidBackendRequest (404)."""
    name = await vertex.start(make_request(prefix))
    with pytest.raises(InvalidBackendRequest) as caught:
        await vertex.poll(name.rpartition("/")[0] + f"/{uuid.uuid4()}")
    assert caught.value.code == 404


async def test_non_gcs_output_prefix_is_refused(vertex: VertexGeneration, vertex_fake: VertexFake) -> None:
    """A local:// output prefix is refused before any call: Veo writes only to Cloud Storage."""
    with pytest.raises(InvalidBackendRequest, match="must be gs://"):
        await vertex.start(make_request("local://requests/x/"))
    assert vertex_fake.requests == []


async def test_resume_polling_after_restart(
    google_settings: Settings, vertex_fake: VertexFake, prefix: str
) -> None:
    """A new backend instance (a restarted worker) polls an operation to completion from its name alone."""
    first = VertexGeneration.from_settings(google_settings)
    name = await first.start(make_request(prefix))
    assert (await first.poll(name)).state is OperationState.RUNNING
    await first.aclose()
    restarted = VertexGeneration.from_settings(google_settings)
    status = await restarted.poll(name)
    await restarted.aclose()
    assert status.state is OperationState.SUCCEEDED
    assert {r.body["operationName"] for r in vertex_fake.requests_to("fetchPredictOperation")} == {name}


@pytest.mark.parametrize(("code", "retryable"), [(14, True), (8, True), (3, False), (13, False)])
def test_operation_error_retryability_follows_the_rpc_code(code: int, retryable: bool) -> None:
    """Operation errors are retryable only for UNAVAILABLE, RESOURCE_EXHAUSTED and ABORTED."""
    operation = types.GenerateVideosOperation.model_validate(
        {"name": "projects/p/locations/l/operations/o", "done": True, "error": {"code": code, "message": "x"}}
    )
    assert status_of(operation).retryable is retryable


def test_done_without_videos_or_filtering_is_failed() -> None:
    """A done operation with neither videos nor a filter count is a failure, not a success."""
    operation = types.GenerateVideosOperation.model_validate(
        {"name": "projects/p/locations/l/operations/o", "done": True, "response": {}}
    )
    status = status_of(operation)
    assert (status.state, status.error_code) == (OperationState.FAILED, "NO_VIDEOS")


async def test_missing_credentials_are_a_clear_permanent_error(
    google_settings: Settings, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the real endpoint without usable ADC, start fails at once with advice, not a retry."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    backend = VertexGeneration.from_settings(google_settings.model_copy(update={"vertex_base_url": None}))
    with pytest.raises(InvalidBackendRequest, match="gcloud auth application-default login"):
        await backend.start(make_request(prefix))
    await backend.aclose()
