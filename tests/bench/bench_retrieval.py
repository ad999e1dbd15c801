"""Benchmark: retrieval over 100,000 chunks (full text, and fused with vectors), and import throughput.

Run: `python -m pytest tests/bench/bench_retrieval.py -s` (not part of the suite).

The corpus is synthetic but shaped like a mixed OER library: 1,000 documents of 100
chunks (about 1,100 characters each); each document has its own 30 subject terms
(drawn from a pool of 20,000 made-up words, so some are shared) mixed into general
English words taken, Zipf-distributed, from the shipped sample's vocabulary. A query is
a lesson's topic (one or two subject terms of a random document) and objective (three
general words). Vectors are random 768-value vectors (the HNSW index does the same
work whatever they mean). Targets: p99 < 50 ms full text, < 100 ms fused.

Import throughput is measured through `CorpusImporter` on 200 generated Markdown files
(the real path: read, chunk, hash, one transaction per document, GIN and HNSW indexes
maintained), without embeddings and with an in-process embedder (so the figure is the
database's, not a model's). The server keeps PostgreSQL's default durability.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from sqlalchemy import text

from service.corpus.importer import CorpusImporter
from service.corpus.repository import CorpusRepository
from service.corpus.seed import sample_files
from service.runtime import Runtime
from service.settings import Settings
from telemetry.logging import configure_logging
from tests.support.pg import PgCluster
from tests.support.sql import sql_engine
from tests.support.vertex_embeddings import embed_text

DOCUMENTS = 1000
CHUNKS_PER_DOCUMENT = 100
WORDS_PER_CHUNK = 170
SUBJECT_POOL = 20_000
SUBJECTS_PER_DOCUMENT = 30
SUBJECT_SHARE = 0.15
QUERIES = 300
IMPORT_FILES = 200

SYLLABLES = ["ka", "lo", "mi", "tre", "zor", "vex", "qua", "bri", "nul", "dap", "sef", "gor", "plin", "wut"]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, samples: list[float], target_ms: float) -> None:
    print(
        f"  {name:<28} p50 {pct(samples, 0.5):7.2f} ms   p99 {pct(samples, 0.99):7.2f} ms"
        f"   (target p99 < {target_ms:g} ms)   n={len(samples)}"
    )


def general_vocabulary() -> list[str]:
    words: list[str] = []
    for path in sample_files():
        words += re.findall(r"[a-z]{3,}", path.read_text().lower())
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: -counts[w])


def subject_pool(rng: random.Random) -> list[str]:
    pool: set[str] = set()
    while len(pool) < SUBJECT_POOL:
        pool.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 4))))
    return sorted(pool)


class Corpus:
    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.general = general_vocabulary()
        # Zipf weights (s = 1) over the general words, most frequent first.
        self.weights = [1 / rank for rank in range(1, len(self.general) + 1)]
        pool = subject_pool(self.rng)
        self.subjects = [self.rng.sample(pool, SUBJECTS_PER_DOCUMENT) for _ in range(DOCUMENTS)]

    def chunk(self, document: int) -> str:
        n_subject = int(WORDS_PER_CHUNK * SUBJECT_SHARE)
        words = self.rng.choices(self.general, self.weights, k=WORDS_PER_CHUNK - n_subject)
        words += self.rng.choices(self.subjects[document], k=n_subject)
        self.rng.shuffle(words)
        sentences = [" ".join(words[i : i + 17]).capitalize() + "." for i in range(0, len(words), 17)]
        return " ".join(sentences)

    def query(self) -> tuple[str, str]:
        document = self.rng.randrange(DOCUMENTS)
        topic = " ".join(self.rng.sample(self.subjects[document], self.rng.randint(1, 2)))
        objective = " ".join(self.rng.sample(self.general[100:1000], 3))
        return topic, objective


def random_vector(rng: random.Random) -> list[float]:
    return [rng.uniform(-1, 1) for _ in range(768)]


class HashingEmbedder:
    """In-process embeddings (the Vertex fake's hashing), so import figures are the database's."""

    name = provider = "bench"
    model = "bench-hashing"

    async def embed_documents(self, texts: Sequence[str], *, title: str | None = None) -> list[list[float]]:
        return [embed_text(t) for t in texts]

    async def embed_query(self, text: str) -> list[float]:
        return embed_text(text)

    async def aclose(self) -> None:
        return None


async def timed(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    await fn()  # warm the pool and the plan
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def bench_import(runtime: Runtime, corpus: Corpus, folder: Path) -> None:
    print("import (CorpusImporter, one transaction per document):")
    for label, embedder in (("full text only", None), ("with 768-value vectors", HashingEmbedder())):
        target = folder / label.replace(" ", "-")
        target.mkdir(parents=True)
        for i in range(IMPORT_FILES):
            body = "\n\n".join(corpus.chunk(i) for _ in range(8))
            (target / f"doc{i}.md").write_text(f"---\ntitle: Document {i}\nlicence: CC0-1.0\n---\n{body}\n")
        report_ = await CorpusImporter(CorpusRepository(runtime.database), embedder).run([target])
        print(
            f"  {label:<28} {report_.chunks_written:6d} chunks in {report_.seconds:6.2f} s"
            f" = {report_.chunks_per_second:7.0f} chunks/s"
        )


async def load(runtime: Runtime, corpus: Corpus) -> None:
    started = time.perf_counter()
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("DROP INDEX ix_corpus_chunks_embedding"))
    for document in range(DOCUMENTS):
        rows = [
            {"position": p, "heading": f"Document {document}", "text": corpus.chunk(document)}
            for p in range(CHUNKS_PER_DOCUMENT)
        ]
        async with sql_engine(runtime).begin() as conn:
            doc_id = (
                await conn.execute(
                    text(
                        "INSERT INTO corpus_documents (key, title, source, licence, content_hash, chunk_count)"
                        " VALUES (:k, :t, 'bench', 'CC0-1.0', 'h', :n) RETURNING id"
                    ),
                    {"k": f"bench:{document}", "t": f"Document {document}", "n": CHUNKS_PER_DOCUMENT},
                )
            ).scalar_one()
            await conn.execute(
                text(
                    "INSERT INTO corpus_chunks (document_id, position, heading, text)"
                    " SELECT :d, c.position, c.heading, c.text FROM jsonb_to_recordset(CAST(:rows AS jsonb))"
                    " AS c(position int, heading text, text text)"
                ),
                {"d": doc_id, "rows": json.dumps(rows)},
            )
    loaded = time.perf_counter()
    async with sql_engine(runtime).connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(
            text(
                "UPDATE corpus_chunks SET embedding = (SELECT CAST(array_agg(random() * 2 - 1) AS vector)"
                " FROM generate_series(1, 768) WHERE corpus_chunks.id > 0)"
            )
        )
        vectors = time.perf_counter()
        await autocommit.execute(text("SET maintenance_work_mem = '512MB'"))
        await autocommit.execute(
            text(
                "CREATE INDEX ix_corpus_chunks_embedding ON corpus_chunks USING hnsw (embedding vector_cosine_ops)"
            )
        )
        indexed = time.perf_counter()
        await autocommit.execute(text("VACUUM ANALYZE corpus_chunks"))
        count = (await autocommit.execute(text("SELECT count(*) FROM corpus_chunks"))).scalar_one()
    print(
        f"\nloaded {count:,} chunks: text and tsvector {loaded - started:.0f} s, vectors "
        f"{vectors - loaded:.0f} s, HNSW index {indexed - vectors:.0f} s"
    )


async def run_bench(runtime: Runtime, folder: Path) -> None:
    corpus = Corpus()
    await load(runtime, corpus)
    repository = CorpusRepository(runtime.database)
    queries = [corpus.query() for _ in range(QUERIES)]
    vectors = [random_vector(corpus.rng) for _ in range(QUERIES)]
    cursor = iter(range(10**9))

    async def fulltext() -> object:
        topic, objective = queries[next(cursor) % QUERIES]
        return await repository.search(topic, 5, objective=objective)

    async def fused() -> object:
        i = next(cursor) % QUERIES
        topic, objective = queries[i]
        return await repository.search(topic, 5, vectors[i], objective=objective)

    print("retrieval of the top 5 (one query at a time):")
    report("full text", await timed(fulltext, QUERIES), 50)
    report("fused (full text + HNSW)", await timed(fused, QUERIES), 100)
    await bench_import(runtime, corpus, folder)


def test_bench_retrieval() -> None:
    """Prints the figures; asserts nothing about time (benchmarks are not tests of speed)."""
    configure_logging("warning", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    root = Path(tempfile.mkdtemp(prefix="reeltrace-bench-"))
    cluster = PgCluster(root, durable=True)
    try:
        url = cluster.url(cluster.new_database(from_template=False))
        from service.db import migrate

        migrate.upgrade(url)
        settings = Settings(database_url=url, data_dir=root / "data")

        async def main() -> None:
            runtime = Runtime.build(settings, url, source_service="bench")
            try:
                await run_bench(runtime, root / "files")
            finally:
                await runtime.close()

        asyncio.run(main())
    finally:
        cluster.server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
