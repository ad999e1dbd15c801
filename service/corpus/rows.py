"""What the corpus stores and returns, as plain values: statement parameters and results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.corpus.chunking import Chunk
from service.corpus.documents import Document


@dataclass(frozen=True, slots=True)
class RetrievedChunk:
    """One passage found for a query, with where it comes from and how it ranked."""

    chunk_id: int
    document_id: int
    position: int
    heading: str
    text: str
    title: str
    source: str
    licence: str
    url: str | None
    score: float
    fulltext_rank: int | None = None
    vector_rank: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RetrievedChunk:
        return cls(
            chunk_id=int(row["chunk_id"]),
            document_id=int(row["document_id"]),
            position=int(row["position"]),
            heading=row["heading"],
            text=row["text"],
            title=row["title"],
            source=row["source"],
            licence=row["licence"],
            url=row["url"],
            score=float(row["score"]),
            fulltext_rank=None if row["fulltext_rank"] is None else int(row["fulltext_rank"]),
            vector_rank=None if row["vector_rank"] is None else int(row["vector_rank"]),
        )

    def as_output(self) -> dict[str, Any]:
        """The chunk as the rag_retrieval stage stores it (JSON)."""
        return {
            "text": self.text,
            "heading": self.heading,
            "title": self.title,
            "source": self.source,
            "licence": self.licence,
            "url": self.url,
            "score": round(self.score, 6),
            "document_id": self.document_id,
            "chunk_id": self.chunk_id,
            "position": self.position,
            "fulltext_rank": self.fulltext_rank,
            "vector_rank": self.vector_rank,
        }


@dataclass(frozen=True, slots=True)
class StoredDocument:
    id: int
    key: str
    title: str
    source: str
    licence: str
    url: str | None
    path: str | None
    chunk_count: int
    embedding_model: str | None
    updated_at: datetime


def vector_literal(values: Sequence[float]) -> str:
    """pgvector's text form, `[1,2,3]`: sent as text and cast, so no driver adapter is needed."""
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def document_params(
    document: Document, chunks: Sequence[Chunk], embedding_model: str | None
) -> dict[str, Any]:
    return {
        "key": document.key,
        "title": document.title,
        "source": document.source,
        "licence": document.licence,
        "url": document.url,
        "path": document.path,
        "content_hash": document.content_hash,
        "embedding_model": embedding_model,
        "chunk_count": len(chunks),
    }


def chunks_param(chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]] | None) -> str:
    rows: list[dict[str, Any]] = []
    for i, chunk in enumerate(chunks):
        row: dict[str, Any] = {"position": chunk.position, "heading": chunk.heading, "text": chunk.text}
        if embeddings is not None:
            row["embedding"] = vector_literal(embeddings[i])
        rows.append(row)
    return json.dumps(rows)
