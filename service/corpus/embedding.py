"""What the corpus needs from an embeddings service, whichever provides it.

Document and query embeddings are asked for separately: retrieval-tuned models embed a
passage and a question differently (Vertex AI's `task_type`), and rank better for it.
Every vector has `DIMENSIONS` values, the width of `corpus_chunks.embedding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

DIMENSIONS = 768


@runtime_checkable
class Embedder(Protocol):
    name: str
    provider: str
    """The `gen_ai.provider.name` of its spans, e.g. `gcp.vertex_ai`."""
    model: str

    async def embed_documents(self, texts: Sequence[str], *, title: str | None = None) -> list[list[float]]:
        """One vector per text, in order; `title` is the document's, which some models use."""
        ...

    async def embed_query(self, text: str) -> list[float]: ...

    async def aclose(self) -> None: ...
