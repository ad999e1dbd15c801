"""`CorpusImporter` on a real PostgreSQL: idempotent per document, replacing changed ones, reporting skips."""

from __future__ import annotations

from pathlib import Path

from service.corpus.documents import Defaults
from service.corpus.importer import CorpusImporter, Outcome
from service.corpus.repository import CorpusRepository
from service.runtime import Runtime
from tests.support.sql import sql_engine


def _write(path: Path, body: str, licence: str = "CC0-1.0") -> Path:
    path.write_text(f"---\ntitle: {path.stem}\nlicence: {licence}\n---\n{body}\n")
    return path


async def _chunks(runtime: Runtime, key: str) -> list[tuple[int, str]]:
    async with sql_engine(runtime).connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT c.id, c.text FROM corpus_chunks c JOIN corpus_documents d ON d.id = c.document_id"
            " WHERE d.key = %(key)s ORDER BY c.position",
            {"key": key},
        )
        return [(int(r[0]), str(r[1])) for r in rows]


async def test_importing_again_leaves_unchanged_documents_alone(runtime: Runtime, tmp_path: Path) -> None:
    """A second import of the same file reports it unchanged and keeps its chunks (same rows)."""
    path = _write(tmp_path / "tides.md", "The Moon pulls the oceans and raises tides.")
    importer = CorpusImporter(CorpusRepository(runtime.database))
    first = await importer.run([path])
    before = await _chunks(runtime, str(path.resolve()))
    second = await importer.run([path])

    assert [f.outcome for f in first.files] == [Outcome.ADDED]
    assert [f.outcome for f in second.files] == [Outcome.UNCHANGED]
    assert before
    assert await _chunks(runtime, str(path.resolve())) == before


async def test_a_changed_document_has_its_chunks_replaced(runtime: Runtime, tmp_path: Path) -> None:
    """A file whose content changed is replaced: its old chunks are gone, its new ones searchable."""
    path = _write(tmp_path / "tides.md", "The Moon pulls the oceans and raises tides, said Quillbury.")
    repository = CorpusRepository(runtime.database)
    importer = CorpusImporter(repository)
    await importer.run([path])
    assert [c.title for c in await repository.search("Quillbury", 5)] == ["tides"]
    _write(path, "Neap tides happen when the Sun and Moon are at right angles.")
    report = await importer.run([path])

    assert [(f.outcome, f.chunks) for f in report.files] == [(Outcome.REPLACED, 1)]
    [(_, text)] = await _chunks(runtime, str(path.resolve()))
    assert "Neap tides" in text
    assert not await repository.search("Quillbury", 5)
    assert [c.title for c in await repository.search("neap", 5)] == ["tides"]


async def test_skipped_files_are_reported_with_their_reason(runtime: Runtime, tmp_path: Path) -> None:
    """Unsupported, unlicensed and missing files are skipped, each with why; the others still import."""
    good = _write(tmp_path / "tides.md", "Tides rise.")
    (tmp_path / "book.pdf").write_bytes(b"%PDF-1.7")
    (tmp_path / "notes.txt").write_text("no licence here")
    report = await CorpusImporter(CorpusRepository(runtime.database)).run([tmp_path, tmp_path / "gone.md"])

    outcomes = {f.path.name: (f.outcome, f.reason) for f in report.files}
    assert outcomes["tides.md"][0] == Outcome.ADDED
    assert outcomes["book.pdf"] == (Outcome.SKIPPED, "unsupported file type .pdf")
    assert outcomes["notes.txt"][0] == Outcome.SKIPPED
    assert "no licence" in (outcomes["notes.txt"][1] or "")
    assert outcomes["gone.md"] == (Outcome.SKIPPED, "no such file")
    assert good.exists()


async def test_options_license_files_that_name_none(runtime: Runtime, tmp_path: Path) -> None:
    """--licence and --source are recorded for a file that has no front matter."""
    (tmp_path / "notes.txt").write_text("Tides rise and fall twice a day.")
    repository = CorpusRepository(runtime.database)
    await CorpusImporter(repository).run([tmp_path], Defaults(licence="CC0-1.0", source="class notes"))
    [stored] = [d for d in await repository.documents() if d.title == "notes"]
    assert (stored.licence, stored.source, stored.chunk_count) == ("CC0-1.0", "class notes", 1)


async def test_two_files_with_one_key_import_once(runtime: Runtime, tmp_path: Path) -> None:
    """Two files naming the same URL in one import: the second is skipped, naming the first."""
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text("---\nlicence: CC0-1.0\nurl: https://example.org/same\n---\nText.\n")
    report = await CorpusImporter(CorpusRepository(runtime.database)).run([tmp_path])
    assert [f.outcome for f in report.files] == [Outcome.ADDED, Outcome.SKIPPED]
    assert "same key as" in (report.files[1].reason or "")


async def test_remove_deletes_a_document_and_its_chunks(runtime: Runtime, tmp_path: Path) -> None:
    """Removing a document by its path deletes it and its chunks."""
    path = _write(tmp_path / "tides.md", "The Moon pulls the oceans.")
    repository = CorpusRepository(runtime.database)
    await CorpusImporter(repository).run([path])
    removed = await repository.remove([str(path.resolve())])
    assert [r["title"] for r in removed] == ["tides"]
    assert await _chunks(runtime, str(path.resolve())) == []
