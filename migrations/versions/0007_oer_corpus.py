"""The OER corpus the lesson pipeline retrieves from: documents and their chunks.

`corpus_documents` holds one row per imported document (its key, title, source,
licence, URL and the hash of its content); `corpus_chunks` its overlapping chunks
with a generated, GIN-indexed `tsvector` (section heading weighted A, text B) for
PostgreSQL's full-text ranking.

When the server has the pgvector extension (the embedded server does), it is created
and chunks get an `embedding vector(768)` column with an HNSW cosine index, filled
when `REELTRACE_EMBEDDINGS_BACKEND=vertex`. On a server without pgvector, or where the
migrating user may not create it, the corpus is made without that column (with a
warning): full-text retrieval works, and the embeddings backend refuses to start.

The upgrade then imports the small OER sample shipped in `service/corpus/sample`, so
the lesson pipeline has sources on a fresh install; a later `reeltrace corpus remove`
of those documents is not undone by anything.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

from service.corpus.seed import import_sample

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
DIMENSIONS = 768

CREATE_VECTOR = """
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_available_extensions WHERE name = 'vector') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS vector;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'extension vector not created: % may not create it', current_user
                USING HINT = 'CREATE EXTENSION vector as an administrator, then add the embedding column (README)';
        END;
    ELSE
        RAISE WARNING 'the pgvector extension is not installed on this server: corpus without embeddings';
    END IF;
END
$$;
"""

# Only when no other object still needs it: the extension may have been there before.
DROP_VECTOR = """
DO $$
BEGIN
    DROP EXTENSION IF EXISTS vector;
EXCEPTION WHEN dependent_objects_still_exist THEN
    NULL;
END
$$;
"""

TSV = (
    "(setweight(to_tsvector('english'::regconfig, heading), 'A'::\"char\") || "
    "setweight(to_tsvector('english'::regconfig, text), 'B'::\"char\"))"
)


def _has_vector() -> bool:
    found = op.get_bind().execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'vector'"))
    return found.first() is not None


def upgrade() -> None:
    op.create_table(
        "corpus_documents",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("licence", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("embedding_model", sa.Text(), nullable=True),
        sa.Column("chunk_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("imported_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_corpus_documents")),
        sa.UniqueConstraint("key", name=op.f("uq_corpus_documents_key")),
    )
    op.create_table(
        "corpus_chunks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("document_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tsv", TSVECTOR(), sa.Computed(TSV, persisted=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["corpus_documents.id"],
            name=op.f("fk_corpus_chunks_document_id_corpus_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_corpus_chunks")),
        sa.UniqueConstraint("document_id", "position", name=op.f("uq_corpus_chunks_document_id_position")),
    )
    op.create_index("ix_corpus_chunks_tsv", "corpus_chunks", ["tsv"], postgresql_using="gin")
    op.execute(CREATE_VECTOR)
    if _has_vector():
        op.execute(f"ALTER TABLE corpus_chunks ADD COLUMN embedding vector({DIMENSIONS})")
        op.execute(
            "CREATE INDEX ix_corpus_chunks_embedding ON corpus_chunks "
            "USING hnsw (embedding vector_cosine_ops)"
        )
    import_sample(op.get_bind())


def downgrade() -> None:
    op.drop_table("corpus_chunks")
    op.drop_table("corpus_documents")
    op.execute(DROP_VECTOR)
