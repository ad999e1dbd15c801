"""`reeltrace corpus import | list | remove`, run as a subprocess against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from service.cli.corpus import sources_table
from tests.service.cli.conftest import Cli

pytestmark = pytest.mark.slow


def _docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "tides.md").write_text("---\ntitle: Tides\nlicence: CC0-1.0\n---\nThe Moon raises tides.\n")
    (folder / "notes.txt").write_text("Unlicensed notes.\n")
    (folder / "book.pdf").write_bytes(b"%PDF-1.7")
    return folder


def test_import_reports_each_file_and_is_idempotent(cli: Cli, tmp_path: Path) -> None:
    """The first import adds the document and says why the others were skipped; the second changes nothing."""
    folder = _docs(tmp_path)
    first = cli.run("corpus", "import", str(folder))
    assert first.returncode == 0, first.stderr
    assert "added" in first.stdout
    assert "no licence" in first.stdout
    assert "unsupported file type .pdf" in first.stdout
    assert "1 added, 0 replaced, 0 unchanged, 2 skipped, 0 failed; 1 chunks written" in first.stdout
    second = cli.run("corpus", "import", str(folder))
    assert "0 added, 0 replaced, 1 unchanged, 2 skipped, 0 failed; 0 chunks written" in second.stdout


def test_list_shows_the_sample_with_its_licence(cli: Cli) -> None:
    """`corpus list` shows the shipped sample's documents with their licence and chunk counts."""
    result = cli.run("corpus", "list")
    assert result.returncode == 0, result.stderr
    assert "Overview of Photosynthesis" in result.stdout
    assert "CC-BY-4.0" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("3 documents, ")


def test_remove_by_path_and_refuse_unknown(cli: Cli, tmp_path: Path) -> None:
    """A document is removed by its file path; an unknown one is a one-line error, nothing removed."""
    folder = _docs(tmp_path)
    cli.run("corpus", "import", str(folder))
    refused = cli.run("corpus", "remove", str(folder / "tides.md"), "nope")
    assert refused.returncode == 1
    assert "not in the corpus: nope" in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    removed = cli.run("corpus", "remove", str(folder / "tides.md"))
    assert removed.returncode == 0, removed.stderr
    assert "removed" in removed.stdout
    assert "Tides" in removed.stdout
    assert "Tides" not in cli.run("corpus", "list").stdout


def test_import_without_paths_is_a_one_line_error(cli: Cli) -> None:
    """`corpus import` with nothing to import says so, without a traceback."""
    result = cli.run("corpus", "import")
    assert result.returncode == 2
    assert "name the files or directories to import" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_lists_the_passages_a_lesson_retrieved() -> None:
    """The status view's passages table names each passage's score, heading, licence and URL."""
    detail = {
        "stages": [
            {
                "name": "rag_retrieval",
                "output": {
                    "method": "fulltext",
                    "chunks": [
                        {"score": 3.6, "heading": "Tides", "licence": "CC0-1.0", "url": "https://e.org/t"}
                    ],
                },
            }
        ]
    }
    table = sources_table(detail)
    assert table is not None
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "retrieved passages (fulltext)" in text
    assert "3.6000" in text
    assert "https://e.org/t" in text
    assert sources_table({"stages": [{"name": "validation", "output": {}}]}) is None
