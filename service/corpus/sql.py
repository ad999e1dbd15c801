"""The corpus's SQL, named: every statement the corpus runs is here.

A full-text search matches chunks holding any word of the topic and ranks them by
`ts_rank_cd` over the words of the topic and the objective together: a chunk matching
more of them ranks higher. The words are OR-ed (`plainto_tsquery` ANDs them, and a
topic plus an objective would rarely match anything whole); only the topic filters,
because an objective's general words ("explain", "steps") match a large share of any
corpus, and ranking every one of those chunks would cost tens of times more.

The fused query ranks the full-text and the vector (cosine, through the HNSW index)
candidates separately, each sorting only its own top rows (a top-N sort, not a sort
of every match), and adds their reciprocal ranks:
score = 1/(RRF_K + full-text rank) + 1/(RRF_K + vector rank).
"""

from __future__ import annotations

from sqlalchemy import text

# Reciprocal rank fusion's constant (Cormack et al., 2009): damps the weight of the very top ranks.
RRF_K = 60
# Candidates each ranking contributes to fusion. pgvector's HNSW scan returns at most
# hnsw.ef_search (default 40) rows, so more would not be more.
CANDIDATES = 40


def _any_word(param: str) -> str:
    return f"to_tsquery('english', replace(plainto_tsquery('english', :{param})::text, ' & ', ' | '))"


QUERIES = f"SELECT {_any_word('topic')} AS filter, {_any_word('terms')} AS ranking"

FIND_DOCUMENT = text("SELECT id, content_hash, embedding_model FROM corpus_documents WHERE key = :key")

UPSERT_DOCUMENT = text(
    """
    INSERT INTO corpus_documents
        (key, title, source, licence, url, path, content_hash, embedding_model, chunk_count)
    VALUES (:key, :title, :source, :licence, :url, :path, :content_hash, :embedding_model, :chunk_count)
    ON CONFLICT (key) DO UPDATE SET
        title = excluded.title, source = excluded.source, licence = excluded.licence,
        url = excluded.url, path = excluded.path, content_hash = excluded.content_hash,
        embedding_model = excluded.embedding_model, chunk_count = excluded.chunk_count,
        updated_at = now()
    RETURNING id
    """
)

DELETE_CHUNKS = text("DELETE FROM corpus_chunks WHERE document_id = :document_id")

# All of a document's chunks in one statement (one round trip), from a JSON array.
INSERT_CHUNKS = text(
    """
    INSERT INTO corpus_chunks (document_id, position, heading, text)
    SELECT :document_id, c.position, c.heading, c.text
    FROM jsonb_to_recordset(CAST(:chunks AS jsonb)) AS c(position int, heading text, text text)
    """
)

INSERT_EMBEDDED_CHUNKS = text(
    """
    INSERT INTO corpus_chunks (document_id, position, heading, text, embedding)
    SELECT :document_id, c.position, c.heading, c.text, CAST(c.embedding AS vector)
    FROM jsonb_to_recordset(CAST(:chunks AS jsonb))
        AS c(position int, heading text, text text, embedding text)
    """
)

HAS_EMBEDDING_COLUMN = text(
    """
    SELECT EXISTS (
        SELECT FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'corpus_chunks' AND column_name = 'embedding'
    ) AS present
    """
)

LIST_DOCUMENTS = text(
    """
    SELECT id, key, title, source, licence, url, path, chunk_count, embedding_model, updated_at
    FROM corpus_documents ORDER BY title, id
    """
)

DELETE_DOCUMENTS = text(
    """
    DELETE FROM corpus_documents
    WHERE CAST(id AS text) = ANY(CAST(:refs AS text[])) OR key = ANY(CAST(:refs AS text[]))
        OR path = ANY(CAST(:refs AS text[]))
    RETURNING id, key, title, chunk_count
    """
)

COUNT_CHUNKS = text("SELECT count(*) AS chunks FROM corpus_chunks")

_CHUNK_COLUMNS = (
    "c.id AS chunk_id, c.document_id, c.position, c.heading, c.text, d.title, d.source, d.licence, d.url"
)

SEARCH_FULLTEXT = text(
    f"""
    WITH q AS ({QUERIES}),
    best AS (
        SELECT c.id, ts_rank_cd(c.tsv, q.ranking) AS score
        FROM q, corpus_chunks c
        WHERE c.tsv @@ q.filter
        ORDER BY score DESC, c.id
        LIMIT :k
    )
    SELECT {_CHUNK_COLUMNS}, best.score,
        row_number() OVER (ORDER BY best.score DESC, c.id) AS fulltext_rank,
        CAST(NULL AS bigint) AS vector_rank
    FROM best
    JOIN corpus_chunks c ON c.id = best.id
    JOIN corpus_documents d ON d.id = c.document_id
    ORDER BY best.score DESC, c.id
    """
)

SEARCH_FUSED = text(
    f"""
    WITH q AS ({QUERIES}),
    textual AS (
        SELECT c.id, ts_rank_cd(c.tsv, q.ranking) AS score
        FROM q, corpus_chunks c
        WHERE c.tsv @@ q.filter
        ORDER BY score DESC, c.id
        LIMIT {CANDIDATES}
    ),
    fulltext AS (SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank FROM textual),
    nearest AS (
        SELECT c.id, c.embedding <=> CAST(:embedding AS vector) AS distance
        FROM corpus_chunks c
        WHERE c.embedding IS NOT NULL
        ORDER BY distance
        LIMIT {CANDIDATES}
    ),
    vector AS (SELECT id, row_number() OVER (ORDER BY distance, id) AS rank FROM nearest),
    fused AS (
        SELECT coalesce(f.id, v.id) AS id, f.rank AS fulltext_rank, v.rank AS vector_rank,
            coalesce(1.0 / ({RRF_K} + f.rank), 0) + coalesce(1.0 / ({RRF_K} + v.rank), 0) AS score
        FROM fulltext f FULL JOIN vector v ON f.id = v.id
    )
    SELECT {_CHUNK_COLUMNS}, CAST(fused.score AS float8) AS score, fused.fulltext_rank, fused.vector_rank
    FROM fused
    JOIN corpus_chunks c ON c.id = fused.id
    JOIN corpus_documents d ON d.id = c.document_id
    ORDER BY fused.score DESC, c.id
    LIMIT :k
    """
)
