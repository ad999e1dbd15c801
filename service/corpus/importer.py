"""Importing files into the corpus, idempotently per document.

A document is found by its key (front-matter `key`, else its URL, else its absolute
path). One whose content hash is stored already (and, with an embeddings backend,
whose chunks carry that model's vectors) is left alone; a changed one has its chunks
replaced in one transaction; a new one is added. Every file given, or found under a
directory given, gets an outcome: what was imported, and what was skipped and why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import structlog

from service.corpus.chunking import chunk_document
from service.corpus.documents import SUPPORTED, Defaults, Document, UnreadableDocument, read_document
from service.corpus.embedding import Embedder
from service.corpus.repository import CorpusRepository
from service.errors import ConfigurationError, ReeltraceError

log = structlog.get_logger("reeltrace.corpus")


class Outcome(StrEnum):
    ADDED = "added"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FileOutcome:
    path: Path
    outcome: Outcome
    title: str | None = None
    chunks: int = 0
    reason: str | None = None


@dataclass
class ImportReport:
    files: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    @property
    def chunks_written(self) -> int:
        return sum(f.chunks for f in self.files if f.outcome in (Outcome.ADDED, Outcome.REPLACED))

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_written / self.seconds if self.seconds > 0 else 0.0


def expand(paths: Sequence[Path]) -> Iterator[Path]:
    """The files to consider: files as given, directories walked (hidden entries left out)."""
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                relative = found.relative_to(path)
                if found.is_file() and not any(part.startswith(".") for part in relative.parts):
                    yield found
        else:
            yield path


class CorpusImporter:
    def __init__(self, repository: CorpusRepository, embedder: Embedder | None = None) -> None:
        self.repository = repository
        self.embedder = embedder

    async def check(self) -> None:
        """Refuse embeddings on a schema without the embedding column (no pgvector at migration)."""
        if self.embedder is not None and not await self.repository.has_embedding_column():
            raise ConfigurationError(
                "REELTRACE_EMBEDDINGS_BACKEND is set but corpus_chunks has no embedding column: "
                "the server had no pgvector extension when it was migrated (see the README)"
            )

    async def run(
        self,
        paths: Sequence[Path],
        defaults: Defaults | None = None,
        on_file: Callable[[FileOutcome], None] | None = None,
    ) -> ImportReport:
        await self.check()
        report = ImportReport()
        started = time.perf_counter()
        seen: dict[str, Path] = {}
        for path in expand(paths):
            outcome = await self.import_file(path, defaults, seen)
            report.files.append(outcome)
            log.info(
                "corpus_file_imported",
                path=str(path),
                outcome=outcome.outcome.value,
                chunks=outcome.chunks,
                reason=outcome.reason,
            )
            if on_file is not None:
                on_file(outcome)
        report.seconds = time.perf_counter() - started
        return report

    async def import_file(self, path: Path, defaults: Defaults | None, seen: dict[str, Path]) -> FileOutcome:
        document = await asyncio.to_thread(_read, path, defaults)
        if isinstance(document, FileOutcome):
            return document
        if document.key in seen:
            return FileOutcome(
                path,
                Outcome.SKIPPED,
                document.title,
                reason=f"same key as {seen[document.key]} ({document.key})",
            )
        seen[document.key] = path
        model = self.embedder.model if self.embedder is not None else None
        stored = await self.repository.find(document.key)
        if (
            stored is not None
            and stored["content_hash"] == document.content_hash
            and (model is None or stored["embedding_model"] == model)
        ):
            return FileOutcome(path, Outcome.UNCHANGED, document.title, reason="content unchanged")
        chunks = chunk_document(document)
        embeddings = None
        if self.embedder is not None:
            try:
                embeddings = await self.embedder.embed_documents(
                    [c.text for c in chunks], title=document.title
                )
            except ReeltraceError as exc:
                return FileOutcome(path, Outcome.FAILED, document.title, reason=exc.detail)
        await self.repository.replace(document, chunks, embeddings, model)
        outcome = Outcome.ADDED if stored is None else Outcome.REPLACED
        return FileOutcome(path, outcome, document.title, chunks=len(chunks))


def _read(path: Path, defaults: Defaults | None) -> Document | FileOutcome:
    """The file's document, or the outcome that says why there is none."""
    if not path.exists():
        return FileOutcome(path, Outcome.SKIPPED, reason="no such file")
    if path.suffix.lower() not in SUPPORTED:
        return FileOutcome(path, Outcome.SKIPPED, reason=f"unsupported file type {path.suffix or '(none)'}")
    try:
        return read_document(path, defaults)
    except UnreadableDocument as exc:
        return FileOutcome(path, Outcome.SKIPPED, reason=str(exc))
