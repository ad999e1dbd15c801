"""Full-text retrieval over the shipped OER sample, on a real PostgreSQL."""

from __future__ import annotations

from service.corpus.repository import CorpusRepository
from service.corpus.seed import sample_files
from service.runtime import Runtime


async def test_the_sample_is_in_a_freshly_migrated_database(runtime: Runtime) -> None:
    """Migrating imports the shipped sample: one CC BY 4.0 document per sample file, chunked."""
    documents = await CorpusRepository(runtime.database).documents()
    assert len(documents) == len(sample_files()) == 3
    assert {d.licence for d in documents} == {"CC-BY-4.0"}
    assert all(d.chunk_count > 3 and d.url for d in documents)


async def test_an_on_topic_document_ranks_above_unrelated_ones(runtime: Runtime) -> None:
    """Asked about the water cycle, the top passages come from the biogeochemical cycles document."""
    found = await CorpusRepository(runtime.database).search(
        "the water cycle: evaporation and precipitation", 5
    )
    assert len(found) == 5
    assert found[0].title == "Biogeochemical Cycles: Water and Carbon"
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)


async def test_photosynthesis_passages_outrank_the_cycles(runtime: Runtime) -> None:
    """Asked about the light reactions, every one of the five passages is from a photosynthesis section."""
    found = await CorpusRepository(runtime.database).search("photosynthesis light-dependent reactions", 5)
    assert {c.title for c in found} <= {
        "Overview of Photosynthesis",
        "The Light-Dependent Reactions of Photosynthesis",
    }
    assert len(found) == 5


async def test_a_topic_the_corpus_does_not_cover_finds_nothing(runtime: Runtime) -> None:
    """A query none of whose words are in the corpus returns no passage at all."""
    assert await CorpusRepository(runtime.database).search("medieval castles", 5) == []


async def test_passages_carry_their_source_and_licence(runtime: Runtime) -> None:
    """Every passage names its document's title, source, licence and URL, and its rank."""
    [chunk] = await CorpusRepository(runtime.database).search("chlorophyll", 1)
    assert chunk.licence == "CC-BY-4.0"
    assert chunk.source.startswith("OpenStax, Concepts of Biology")
    assert chunk.url is not None
    assert chunk.url.startswith("https://openstax.org/")
    assert chunk.fulltext_rank == 1
    assert chunk.vector_rank is None


async def test_the_objective_ranks_but_does_not_filter(runtime: Runtime) -> None:
    """Words of the objective alone find nothing; with the topic they reorder its passages."""
    repository = CorpusRepository(runtime.database)
    assert await repository.search("medieval castles", 5, objective="photosynthesis chlorophyll") == []
    plain = await repository.search("photosynthesis", 5)
    boosted = await repository.search("photosynthesis", 5, objective="wavelength of visible light")
    assert plain[0].title == "Overview of Photosynthesis"
    assert boosted[0].title == "The Light-Dependent Reactions of Photosynthesis"
    assert "Light" in boosted[0].heading.split(" — ")[1]
