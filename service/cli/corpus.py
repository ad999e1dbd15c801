"""`reeltrace corpus`: import, list and remove the OER documents lessons are written from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.backends.factory import build_embeddings
from service.cli.common import command_runtime, console, fail, one_shot_settings, out, run
from service.corpus.documents import Defaults
from service.corpus.importer import CorpusImporter, FileOutcome, ImportReport, Outcome, expand
from service.corpus.repository import CorpusRepository
from service.corpus.rows import StoredDocument
from service.corpus.seed import sample_files

corpus_app = typer.Typer(
    help="Import, list and remove the documents lessons are written from.", no_args_is_help=True
)

_STYLES = {
    Outcome.ADDED: "green",
    Outcome.REPLACED: "cyan",
    Outcome.UNCHANGED: "dim",
    Outcome.SKIPPED: "yellow",
    Outcome.FAILED: "red",
}


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")


@corpus_app.command("import")
def import_(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Markdown, text or HTML files, or directories of them.")
    ] = None,
    licence: str | None = typer.Option(
        None, "--licence", "--license", help="Licence of files that name none."
    ),
    source: str | None = typer.Option(None, help="Source of files that name none (default: their title)."),
    sample: bool = typer.Option(False, "--sample", help="Also the OER sample shipped with reeltrace."),
) -> None:
    """Import documents: new ones added, changed ones replaced, unchanged ones left alone.

    Each is split into chunks of at most 1,200 characters, each starting with the last
    200 characters of the one before. A document's licence, source and URL come from
    its front matter (Markdown, text) or its <meta>/<link> tags (HTML), else from
    --licence and --source; one without a licence is skipped. With
    REELTRACE_EMBEDDINGS_BACKEND=vertex its chunks are embedded too.
    """
    given = list(paths or []) + (sample_files() if sample else [])
    if not given:
        raise fail("name the files or directories to import (or --sample)")
    settings = one_shot_settings()
    files = list(expand(given))

    async def body() -> ImportReport:
        async with command_runtime(settings) as runtime:
            embedder = build_embeddings(settings)
            try:
                importer = CorpusImporter(CorpusRepository(runtime.database), embedder)
                with Progress(
                    TextColumn("[bold]importing"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[current]}"),
                    TimeElapsedColumn(),
                    console=console,
                    transient=True,
                ) as progress:
                    task = progress.add_task("import", total=len(files), current="")

                    def advance(outcome: FileOutcome) -> None:
                        progress.update(task, advance=1, current=escape(outcome.path.name))

                    return await importer.run(given, Defaults(licence=licence, source=source), advance)
            finally:
                if embedder is not None:
                    await embedder.aclose()

    report = run(body)
    _print_report(report)
    if report.count(Outcome.FAILED):
        raise typer.Exit(1)


def _print_report(report: ImportReport) -> None:
    table = Table()
    for column in ("file", "outcome", "chunks", "title / reason"):
        table.add_column(column, overflow="fold")
    for f in report.files:
        style = _STYLES[f.outcome]
        detail = f.reason if f.outcome in (Outcome.SKIPPED, Outcome.FAILED) else (f.title or "")
        table.add_row(
            str(f.path), f"[{style}]{f.outcome.value}[/]", str(f.chunks or ""), escape(detail or "")
        )
    out.print(table)
    counts = ", ".join(f"{report.count(o)} {o.value}" for o in Outcome)
    out.print(
        f"{counts}; {report.chunks_written} chunks written in {report.seconds:.2f} s "
        f"({report.chunks_per_second:.0f} chunks/s)"
    )


@corpus_app.command("list")
def list_documents() -> None:
    """List the corpus's documents: title, licence, chunks, whether embedded, key."""
    settings = one_shot_settings()

    async def body() -> list[StoredDocument]:
        async with command_runtime(settings) as runtime:
            return await CorpusRepository(runtime.database).documents()

    documents = run(body)
    if not documents:
        out.print("the corpus is empty: add documents with `reeltrace corpus import PATH...`")
        return
    table = Table()
    for column in ("id", "title", "licence", "chunks", "embeddings", "source", "key"):
        table.add_column(column, overflow="fold")
    for d in documents:
        table.add_row(
            str(d.id), d.title, d.licence, str(d.chunk_count), d.embedding_model or "-", d.source, d.key
        )
    out.print(table)
    out.print(f"{len(documents)} documents, {sum(d.chunk_count for d in documents)} chunks")


@corpus_app.command("remove")
def remove(
    refs: Annotated[list[str], typer.Argument(help="Documents by id, key (URL) or file path.")],
) -> None:
    """Remove documents and their chunks. Refused whole if one of them is not in the corpus."""
    settings = one_shot_settings()
    wanted = [str(Path(r).resolve()) if Path(r).exists() else r for r in refs]

    async def body() -> list[dict[str, object]]:
        async with command_runtime(settings) as runtime:
            repository = CorpusRepository(runtime.database)
            known = {str(d.id) for d in await repository.documents()} | {
                v for d in await repository.documents() for v in (d.key, d.path) if v
            }
            missing = [r for r, w in zip(refs, wanted, strict=True) if w not in known]
            if missing:
                raise fail(f"not in the corpus: {', '.join(missing)} (see `reeltrace corpus list`)", code=1)
            return await repository.remove(wanted)

    removed = run(body)
    for row in removed:
        out.print(f"removed {row['id']}: {row['title']} ({row['chunk_count']} chunks)")


def sources_table(detail: dict[str, Any]) -> Table | None:
    """The passages a lesson request retrieved (for `reeltrace status`), or None if it has none."""
    output = next((s.get("output") for s in detail.get("stages", []) if s["name"] == "rag_retrieval"), None)
    chunks = [c for c in (output or {}).get("chunks", []) if isinstance(c, dict)]
    if not chunks:
        return None
    table = Table(title=f"retrieved passages ({output.get('method', '-') if output else '-'})")
    for column in ("#", "score", "title", "licence", "url"):
        table.add_column(column, overflow="fold")
    for n, chunk in enumerate(chunks, 1):
        table.add_row(
            str(n), f"{chunk.get('score', 0):.4f}", chunk.get("heading") or chunk.get("title") or "-",
            chunk.get("licence") or "-", chunk.get("url") or "-",
        )  # fmt: skip
    return table
