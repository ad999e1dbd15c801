"""The Vertex AI embeddings backend: the real google-genai client against the local Vertex fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from service.backends.base import QuotaExceeded, TransientBackendError
from service.backends.vertex_embeddings import BATCH_SIZE, VertexEmbeddings
from service.settings import Settings
from tests.support.vertex_embeddings import embed_text
from tests.support.vertex_fake import VertexFake


@pytest.fixture
def fake() -> Iterator[VertexFake]:
    with VertexFake() as server:
        yield server


@pytest.fixture
async def embedder(fake: VertexFake) -> AsyncIterator[VertexEmbeddings]:
    settings = Settings(google_cloud_project="reeltrace-test", vertex_base_url=fake.base_url)
    backend = VertexEmbeddings.from_settings(settings)
    yield backend
    await backend.aclose()


async def test_documents_are_embedded_in_batches_with_their_title(
    embedder: VertexEmbeddings, fake: VertexFake
) -> None:
    """Texts go to the model's :predict in batches of BATCH_SIZE, as RETRIEVAL_DOCUMENT with the title."""
    texts = [f"passage {i} about tides" for i in range(BATCH_SIZE + 3)]
    vectors = await embedder.embed_documents(texts, title="Tides")

    assert vectors[5] == pytest.approx(embed_text(texts[5]))
    calls = fake.requests_to("predict")
    assert [len(c.body["instances"]) for c in calls] == [BATCH_SIZE, 3]
    assert calls[0].path.endswith("/publishers/google/models/text-embedding-005:predict")
    assert calls[0].body["instances"][0] == {
        "content": texts[0],
        "task_type": "RETRIEVAL_DOCUMENT",
        "title": "Tides",
    }
    assert calls[0].body["parameters"] == {"outputDimensionality": 768}


async def test_a_query_is_embedded_as_a_query(embedder: VertexEmbeddings, fake: VertexFake) -> None:
    """A query is one RETRIEVAL_QUERY instance, answered with one 768-value vector."""
    vector = await embedder.embed_query("why are there tides")
    assert len(vector) == 768
    [call] = fake.requests_to("predict")
    assert call.body["instances"] == [{"content": "why are there tides", "task_type": "RETRIEVAL_QUERY"}]


async def test_quota_errors_are_retryable_quota_exceeded(
    embedder: VertexEmbeddings, fake: VertexFake
) -> None:
    """A 429 RESOURCE_EXHAUSTED from the model is QuotaExceeded, retried with backoff by the pipeline."""
    fake.fail_next(429, route="predict")
    with pytest.raises(QuotaExceeded):
        await embedder.embed_query("tides")


async def test_server_errors_are_transient(embedder: VertexEmbeddings, fake: VertexFake) -> None:
    """A 503 from the model is a transient error, which counts against the embedding breaker."""
    fake.fail_next(503, route="predict")
    with pytest.raises(TransientBackendError):
        await embedder.embed_query("tides")
