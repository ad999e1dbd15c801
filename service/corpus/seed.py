"""The OER sample shipped in `sample/`, imported by the migration that creates the corpus.

It runs on the migration's own (synchronous) connection and transaction, through the
same reading, chunking and statements as `reeltrace corpus import`, without
embeddings: with an embeddings backend, `reeltrace corpus import --sample` embeds it.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection

from service.corpus.chunking import chunk_document
from service.corpus.documents import read_document
from service.corpus.repository import CORPUS
from service.corpus.rows import chunks_param, document_params

SAMPLE_DIR = Path(__file__).parent / "sample"


def sample_files() -> list[Path]:
    """The sample's documents (its attribution and licence files are not documents)."""
    return sorted(p for p in SAMPLE_DIR.glob("*.md") if p.name != "ATTRIBUTION.md")


def import_sample(connection: Connection) -> int:
    """Import the sample's documents on `connection`; returns how many chunks were written."""
    written = 0
    for path in sample_files():
        document = read_document(path)
        chunks = chunk_document(document)
        # The named statements are written for psycopg: run as written, binds and all.
        document_id = connection.exec_driver_sql(
            CORPUS["upsert_document"], document_params(document, chunks, None)
        ).scalar_one()
        connection.exec_driver_sql(CORPUS["delete_chunks"], {"document_id": document_id})
        connection.exec_driver_sql(
            CORPUS["insert_chunks"], {"document_id": document_id, "chunks": chunks_param(chunks, None)}
        )
        written += len(chunks)
    return written
