"""Text embeddings from Vertex AI (`text-embedding-005` by default), through google-genai.

The client sends `:predict` with one instance per text (`content`, `task_type`,
`title`) and `outputDimensionality`, and reads `predictions[].embeddings.values`.
Texts go in batches of `BATCH_SIZE`: the model takes at most 250 instances and about
20,000 tokens a request, and 32 chunks of at most ~1,400 characters stay well inside.
"""

from __future__ import annotations

from collections.abc import Sequence

from google import genai
from google.genai import types

from service.backends.base import InvalidBackendRequest
from service.backends.google_clients import PROVIDER, classify_error, genai_client
from service.corpus.embedding import DIMENSIONS
from service.settings import Settings

BATCH_SIZE = 32


class VertexEmbeddings:
    name = "vertex"
    provider = PROVIDER

    def __init__(self, client: genai.Client, *, model: str) -> None:
        self._client = client
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> VertexEmbeddings:
        return cls(genai_client(settings), model=settings.embedding_model)

    async def _embed(self, texts: Sequence[str], task_type: str, title: str | None) -> list[list[float]]:
        config = types.EmbedContentConfig(task_type=task_type, output_dimensionality=DIMENSIONS, title=title)
        contents: list[types.Content] = [types.Content(parts=[types.Part(text=t)]) for t in texts]
        try:
            response = await self._client.aio.models.embed_content(
                model=self.model, contents=contents, config=config
            )
        except Exception as exc:
            raise classify_error(exc, "Vertex AI embeddings") from exc
        vectors = [list(e.values or []) for e in response.embeddings or []]
        if len(vectors) != len(texts) or any(len(v) != DIMENSIONS for v in vectors):
            raise InvalidBackendRequest(
                f"Vertex AI embeddings: expected {len(texts)} vectors of {DIMENSIONS} values, "
                f"got {len(vectors)} of {sorted({len(v) for v in vectors})}",
                code="bad_embedding",
            )
        return vectors

    async def embed_documents(self, texts: Sequence[str], *, title: str | None = None) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH_SIZE):
            vectors.extend(await self._embed(texts[start : start + BATCH_SIZE], "RETRIEVAL_DOCUMENT", title))
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        return (await self._embed([text], "RETRIEVAL_QUERY", None))[0]

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        self._client.close()
