"""Reading Markdown, text and HTML files into documents with their licence and sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.corpus.documents import Defaults, UnreadableDocument, read_document

MARKDOWN = """---
title: Tides
source: An ocean primer
licence: CC-BY-4.0
url: https://example.org/tides
---

# Tides

The **Moon** pulls the oceans.

## Spring tides

When the Sun and the [Moon](https://example.org/moon) line up, tides are larger.
"""


def test_markdown_front_matter_names_the_document(tmp_path: Path) -> None:
    """Front matter gives title, source, licence and URL; the URL is the document's key."""
    path = tmp_path / "tides.md"
    path.write_text(MARKDOWN)
    document = read_document(path)
    assert (document.title, document.source, document.licence) == ("Tides", "An ocean primer", "CC-BY-4.0")
    assert document.key == document.url == "https://example.org/tides"


def test_markdown_headings_start_sections_with_plain_text(tmp_path: Path) -> None:
    """Each heading opens a section; emphasis and links are reduced to their words."""
    path = tmp_path / "tides.md"
    path.write_text(MARKDOWN)
    sections = read_document(path).sections
    assert [s.heading for s in sections] == ["Tides", "Spring tides"]
    assert sections[0].text.strip() == "The Moon pulls the oceans."
    assert "the Moon line up" in sections[1].text


def test_a_document_without_a_licence_is_refused(tmp_path: Path) -> None:
    """A file naming no licence, imported without --licence, cannot become a document."""
    path = tmp_path / "notes.txt"
    path.write_text("Tides rise and fall.")
    with pytest.raises(UnreadableDocument, match="no licence"):
        read_document(path)


def test_options_fill_in_what_the_file_does_not_say(tmp_path: Path) -> None:
    """--licence and --source apply to a file without them; its key is then its absolute path."""
    path = tmp_path / "notes.txt"
    path.write_text("Tides rise and fall.")
    document = read_document(path, Defaults(licence="CC0-1.0", source="class notes"))
    assert (document.licence, document.source) == ("CC0-1.0", "class notes")
    assert document.key == str(path.resolve())


def test_html_gives_metadata_and_sections_without_scripts(tmp_path: Path) -> None:
    """HTML: <title>, licence and canonical links are read; headings open sections; scripts are dropped."""
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Moon phases</title>"
        '<link rel="license" href="https://creativecommons.org/licenses/by/4.0/">'
        '<link rel="canonical" href="https://example.org/moon"><script>var x = 1;</script></head>'
        "<body><nav>Home</nav><h1>Moon phases</h1><p>The Moon shows phases.</p>"
        "<h2>New moon</h2><p>The Moon is between Earth and the Sun.</p></body></html>"
    )
    document = read_document(path)
    assert document.title == "Moon phases"
    assert document.licence == "https://creativecommons.org/licenses/by/4.0/"
    assert document.key == "https://example.org/moon"
    assert [(s.heading, s.text) for s in document.sections] == [
        ("Moon phases", "The Moon shows phases."),
        ("New moon", "The Moon is between Earth and the Sun."),
    ]


def test_unsupported_file_types_are_refused(tmp_path: Path) -> None:
    """A PDF (or any other type) is refused with its type named."""
    path = tmp_path / "book.pdf"
    path.write_bytes(b"%PDF-1.7")
    with pytest.raises(UnreadableDocument, match=r"unsupported file type \.pdf"):
        read_document(path, Defaults(licence="CC0-1.0"))


def test_changing_the_licence_changes_the_hash(tmp_path: Path) -> None:
    """The same bytes under another licence hash differently, so a re-import records the new licence."""
    path = tmp_path / "notes.txt"
    path.write_text("Tides rise and fall.")
    first = read_document(path, Defaults(licence="CC0-1.0"))
    second = read_document(path, Defaults(licence="CC-BY-4.0"))
    assert first.content_hash != second.content_hash
