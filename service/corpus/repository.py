"""The only code that reads and writes the corpus tables.

Searches run as one statement on a pooled connection (the hot path of every lesson);
a document's replacement (its row, the removal of its old chunks, the new ones) runs
in one transaction, so a search never sees a document half replaced. An unreachable
server is `DatabaseUnavailable` (raised by the `Database`), as for every other table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.corpus.chunking import Chunk
from service.corpus.documents import Document
from service.corpus.rows import (
    RetrievedChunk,
    StoredDocument,
    chunks_param,
    document_params,
    vector_literal,
)
from service.db.database import Database
from service.db.namedsql import NamedSql

CORPUS = NamedSql("service.corpus", "sql/corpus.sql")


class CorpusRepository:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._embedding_column: bool | None = None

    async def _fetch(self, statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.database.fetch(statement, params)

    async def has_embedding_column(self) -> bool:
        """Whether the schema has `corpus_chunks.embedding` (pgvector was there when it migrated)."""
        if self._embedding_column is None:
            rows = await self._fetch(CORPUS["has_embedding_column"], {})
            self._embedding_column = bool(rows[0]["present"])
        return self._embedding_column

    async def find(self, key: str) -> dict[str, Any] | None:
        rows = await self._fetch(CORPUS["find_document"], {"key": key})
        return rows[0] if rows else None

    async def replace(
        self,
        document: Document,
        chunks: Sequence[Chunk],
        embeddings: Sequence[Sequence[float]] | None = None,
        embedding_model: str | None = None,
    ) -> int:
        """Write `document` with `chunks` (and their embeddings), replacing what its key held; its id."""
        insert = CORPUS["insert_chunks"] if embeddings is None else CORPUS["insert_embedded_chunks"]
        async with self.database.transaction() as tx:
            params = document_params(document, chunks, embedding_model if embeddings is not None else None)
            document_id = int((await tx.fetch(CORPUS["upsert_document"], params))[0]["id"])
            await tx.execute(CORPUS["delete_chunks"], {"document_id": document_id})
            await tx.execute(insert, {"document_id": document_id, "chunks": chunks_param(chunks, embeddings)})
        return document_id

    async def documents(self) -> list[StoredDocument]:
        return [StoredDocument(**row) for row in await self._fetch(CORPUS["list_documents"], {})]

    async def remove(self, refs: Sequence[str]) -> list[dict[str, Any]]:
        """Delete the documents named by id, key or path (their chunks go with them); those deleted."""
        return await self._fetch(CORPUS["delete_documents"], {"refs": list(refs)})

    async def chunk_count(self) -> int:
        return int((await self._fetch(CORPUS["count_chunks"], {}))[0]["chunks"])

    async def search(
        self, topic: str, k: int, embedding: Sequence[float] | None = None, *, objective: str | None = None
    ) -> list[RetrievedChunk]:
        """The `k` best chunks on `topic`, ranked by its words and the `objective`'s, fused with
        vector ranking given the query's embedding."""
        params: dict[str, Any] = {"topic": topic, "terms": f"{topic} {objective or ''}", "k": k}
        if embedding is None:
            rows = await self._fetch(CORPUS["search_fulltext"], params)
        else:
            rows = await self._fetch(
                CORPUS["search_fused"], params | {"embedding": vector_literal(embedding)}
            )
        return [RetrievedChunk.from_row(row) for row in rows]
