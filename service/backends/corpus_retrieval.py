"""Retrieval from the corpus in PostgreSQL: full-text ranking, fused with vectors when given one."""

from __future__ import annotations

from collections.abc import Sequence

from service.backends.base import InvalidBackendRequest
from service.corpus.repository import CorpusRepository
from service.corpus.rows import RetrievedChunk


class PostgresRetrieval:
    name = "postgres"

    def __init__(self, repository: CorpusRepository) -> None:
        self.repository = repository

    async def retrieve(
        self,
        topic: str,
        k: int = 5,
        *,
        objective: str | None = None,
        query_embedding: Sequence[float] | None = None,
    ) -> list[RetrievedChunk]:
        if query_embedding is not None and not await self.repository.has_embedding_column():
            raise InvalidBackendRequest(
                "embeddings are configured but corpus_chunks has no embedding column "
                "(the server had no pgvector when it was migrated; see the README)",
                code="no_vector_column",
            )
        return await self.repository.search(topic, k, query_embedding, objective=objective)
