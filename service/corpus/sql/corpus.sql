-- The corpus's SQL, named: every statement the corpus runs is here.
--
-- A full-text search matches chunks holding any word of the topic and ranks them by
-- `ts_rank_cd` over the words of the topic and the objective together: a chunk matching
-- more of them ranks higher. The words are OR-ed (`plainto_tsquery` ANDs them, and a
-- topic plus an objective would rarely match anything whole); only the topic filters,
-- because an objective's general words ("explain", "steps") match a large share of any
-- corpus, and ranking every one of those chunks would cost tens of times more.
--
-- The fused query ranks the full-text and the vector (cosine, through the HNSW index)
-- candidates separately, each sorting only its own top rows (a top-N sort, not a sort
-- of every match), and adds their reciprocal ranks:
-- score = 1/(60 + full-text rank) + 1/(60 + vector rank), over the top 40 candidates of each.

-- name: find_document
SELECT id, content_hash, embedding_model FROM corpus_documents WHERE key = %(key)s;

-- name: upsert_document
INSERT INTO corpus_documents
        (key, title, source, licence, url, path, content_hash, embedding_model, chunk_count)
    VALUES (%(key)s, %(title)s, %(source)s, %(licence)s, %(url)s, %(path)s, %(content_hash)s, %(embedding_model)s, %(chunk_count)s)
    ON CONFLICT (key) DO UPDATE SET
        title = excluded.title, source = excluded.source, licence = excluded.licence,
        url = excluded.url, path = excluded.path, content_hash = excluded.content_hash,
        embedding_model = excluded.embedding_model, chunk_count = excluded.chunk_count,
        updated_at = now()
    RETURNING id;

-- name: delete_chunks
DELETE FROM corpus_chunks WHERE document_id = %(document_id)s;

-- name: insert_chunks
-- All of a document's chunks in one statement (one round trip), from a JSON array.
INSERT INTO corpus_chunks (document_id, position, heading, text)
    SELECT %(document_id)s, c.position, c.heading, c.text
    FROM jsonb_to_recordset(CAST(%(chunks)s AS jsonb)) AS c(position int, heading text, text text);

-- name: insert_embedded_chunks
INSERT INTO corpus_chunks (document_id, position, heading, text, embedding)
    SELECT %(document_id)s, c.position, c.heading, c.text, CAST(c.embedding AS vector)
    FROM jsonb_to_recordset(CAST(%(chunks)s AS jsonb))
        AS c(position int, heading text, text text, embedding text);

-- name: has_embedding_column
SELECT EXISTS (
        SELECT FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'corpus_chunks' AND column_name = 'embedding'
    ) AS present;

-- name: list_documents
SELECT id, key, title, source, licence, url, path, chunk_count, embedding_model, updated_at
    FROM corpus_documents ORDER BY title, id;

-- name: delete_documents
DELETE FROM corpus_documents
    WHERE CAST(id AS text) = ANY(CAST(%(refs)s AS text[])) OR key = ANY(CAST(%(refs)s AS text[]))
        OR path = ANY(CAST(%(refs)s AS text[]))
    RETURNING id, key, title, chunk_count;

-- name: count_chunks
SELECT count(*) AS chunks FROM corpus_chunks;

-- name: search_fulltext
WITH q AS (SELECT to_tsquery('english', replace(plainto_tsquery('english', %(topic)s)::text, ' & ', ' | ')) AS filter, to_tsquery('english', replace(plainto_tsquery('english', %(terms)s)::text, ' & ', ' | ')) AS ranking),
    best AS (
        SELECT c.id, ts_rank_cd(c.tsv, q.ranking) AS score
        FROM q, corpus_chunks c
        WHERE c.tsv @@ q.filter
        ORDER BY score DESC, c.id
        LIMIT %(k)s
    )
    SELECT c.id AS chunk_id, c.document_id, c.position, c.heading, c.text, d.title, d.source, d.licence, d.url, best.score,
        row_number() OVER (ORDER BY best.score DESC, c.id) AS fulltext_rank,
        CAST(NULL AS bigint) AS vector_rank
    FROM best
    JOIN corpus_chunks c ON c.id = best.id
    JOIN corpus_documents d ON d.id = c.document_id
    ORDER BY best.score DESC, c.id;

-- name: search_fused
WITH q AS (SELECT to_tsquery('english', replace(plainto_tsquery('english', %(topic)s)::text, ' & ', ' | ')) AS filter, to_tsquery('english', replace(plainto_tsquery('english', %(terms)s)::text, ' & ', ' | ')) AS ranking),
    textual AS (
        SELECT c.id, ts_rank_cd(c.tsv, q.ranking) AS score
        FROM q, corpus_chunks c
        WHERE c.tsv @@ q.filter
        ORDER BY score DESC, c.id
        LIMIT 40
    ),
    fulltext AS (SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank FROM textual),
    nearest AS (
        SELECT c.id, c.embedding <=> CAST(%(embedding)s AS vector) AS distance
        FROM corpus_chunks c
        WHERE c.embedding IS NOT NULL
        ORDER BY distance
        LIMIT 40
    ),
    vector AS (SELECT id, row_number() OVER (ORDER BY distance, id) AS rank FROM nearest),
    fused AS (
        SELECT coalesce(f.id, v.id) AS id, f.rank AS fulltext_rank, v.rank AS vector_rank,
            coalesce(1.0 / (60 + f.rank), 0) + coalesce(1.0 / (60 + v.rank), 0) AS score
        FROM fulltext f FULL JOIN vector v ON f.id = v.id
    )
    SELECT c.id AS chunk_id, c.document_id, c.position, c.heading, c.text, d.title, d.source, d.licence, d.url, CAST(fused.score AS float8) AS score, fused.fulltext_rank, fused.vector_rank
    FROM fused
    JOIN corpus_chunks c ON c.id = fused.id
    JOIN corpus_documents d ON d.id = c.document_id
    ORDER BY fused.score DESC, c.id
    LIMIT %(k)s;
