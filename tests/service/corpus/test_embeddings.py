"""Embeddings stored at import and fused with full-text ranking, through google-genai and the Vertex fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.backends.vertex_embeddings import VertexEmbeddings
from service.corpus.importer import CorpusImporter, Outcome
from service.corpus.repository import CorpusRepository
from service.corpus.seed import sample_files
from service.runtime import Runtime
from tests.support.sql import sql_engine
from tests.support.vertex_fake import VertexFake


async def _embedded(runtime: Runtime) -> list[tuple[str | None, int, int | None]]:
    async with sql_engine(runtime).connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT d.embedding_model, count(*), max(vector_dims(c.embedding))"
            " FROM corpus_chunks c JOIN corpus_documents d ON d.id = c.document_id"
            " WHERE c.embedding IS NOT NULL GROUP BY d.embedding_model"
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_import_stores_a_vector_per_chunk(
    runtime: Runtime, embedder: VertexEmbeddings, vertex: VertexFake
) -> None:
    """With an embeddings backend, every chunk of the sample gets a 768-value vector from the model."""
    repository = CorpusRepository(runtime.database)
    report = await CorpusImporter(repository, embedder).run(sample_files())

    # The migration imported the sample without vectors: the import adds them.
    assert {f.outcome for f in report.files} == {Outcome.REPLACED}
    assert await _embedded(runtime) == [("text-embedding-005", await repository.chunk_count(), 768)]
    bodies = [r.body for r in vertex.requests_to("predict")]
    assert {i["task_type"] for b in bodies for i in b["instances"]} == {"RETRIEVAL_DOCUMENT"}
    assert {b["parameters"]["outputDimensionality"] for b in bodies} == {768}


async def test_embedded_documents_are_not_embedded_again(
    runtime: Runtime, embedder: VertexEmbeddings, vertex: VertexFake
) -> None:
    """A second import with the same model finds every document unchanged and calls the model no more."""
    importer = CorpusImporter(CorpusRepository(runtime.database), embedder)
    await importer.run(sample_files())
    calls = len(vertex.requests_to("predict"))
    report = await importer.run(sample_files())
    assert {f.outcome for f in report.files} == {Outcome.UNCHANGED}
    assert len(vertex.requests_to("predict")) == calls


async def test_search_with_a_query_vector_fuses_both_rankings(
    runtime: Runtime, embedder: VertexEmbeddings
) -> None:
    """Given the query's embedding, passages are ranked by reciprocal rank fusion of both rankings."""
    repository = CorpusRepository(runtime.database)
    await CorpusImporter(repository, embedder).run(sample_files())
    query = "how the water cycle moves water through evaporation"
    found = await repository.search(query, 5, await embedder.embed_query(query))

    top = found[0]
    assert top.title == "Biogeochemical Cycles: Water and Carbon"
    assert top.fulltext_rank is not None
    assert top.vector_rank is not None
    assert top.score == pytest.approx(1 / (60 + top.fulltext_rank) + 1 / (60 + top.vector_rank))


async def test_a_model_failure_fails_that_document_only(
    runtime: Runtime, embedder: VertexEmbeddings, vertex: VertexFake, tmp_path: Path
) -> None:
    """When the embeddings call fails, that document is reported failed with the reason and not written."""
    path = tmp_path / "tides.md"
    path.write_text("---\nlicence: CC0-1.0\n---\nQuillbury tides rise and fall.\n")
    vertex.fail_next(429, route="predict")
    report = await CorpusImporter(CorpusRepository(runtime.database), embedder).run([path])
    [outcome] = report.files
    assert outcome.outcome == Outcome.FAILED
    assert "429" in (outcome.reason or "")
    assert not await CorpusRepository(runtime.database).search("Quillbury", 5)
