"""The Vertex fake, and the real embeddings backend (google-genai) pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from service.backends.vertex_embeddings import VertexEmbeddings
from service.settings import Settings
from tests.support.vertex_fake import VertexFake


@pytest.fixture
def vertex() -> Iterator[VertexFake]:
    with VertexFake() as fake:
        yield fake


@pytest.fixture
async def embedder(vertex: VertexFake) -> AsyncIterator[VertexEmbeddings]:
    settings = Settings(
        google_cloud_project="reeltrace-test", vertex_base_url=vertex.base_url, embeddings_backend="vertex"
    )
    backend = VertexEmbeddings.from_settings(settings)
    yield backend
    await backend.aclose()
