"""Splitting sections into bounded, overlapping chunks."""

from __future__ import annotations

import itertools

from service.corpus.chunking import CHUNK_CHARS, OVERLAP_CHARS, chunk_document, split_text
from service.corpus.documents import Document, Section


def _document(*sections: Section) -> Document:
    return Document("k", "Title", "src", "CC0-1.0", None, "/x", tuple(sections), "h")


def _paragraphs(count: int) -> str:
    return "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(count))


def test_chunks_stay_within_the_size_plus_the_overlap() -> None:
    """No chunk is longer than CHUNK_CHARS of new text plus the carried overlap."""
    chunks = split_text(_paragraphs(40))
    assert len(chunks) > 5
    assert max(len(c) for c in chunks) <= CHUNK_CHARS + OVERLAP_CHARS + 2


def test_each_chunk_starts_with_the_end_of_the_previous_one() -> None:
    """The tail of a chunk opens the next, so an idea cut at the boundary is whole in one of them."""
    chunks = split_text(_paragraphs(40))
    for before, after in itertools.pairwise(chunks):
        carried = after.split("\n\n")[0]
        assert before.endswith(carried)
        assert 0 < len(carried) <= OVERLAP_CHARS
        assert not before.startswith(after)


def test_a_paragraph_longer_than_a_chunk_is_cut_at_sentences() -> None:
    """A single long paragraph becomes several chunks, each ending at a sentence's end."""
    paragraph = " ".join(f"Sentence number {i} says something about tides." for i in range(80))
    chunks = split_text(paragraph, overlap=0)
    assert len(chunks) > 1
    assert all(c.endswith(".") and len(c) <= CHUNK_CHARS for c in chunks)
    assert " ".join(chunks) == paragraph


def test_sections_never_share_a_chunk_and_positions_count_up() -> None:
    """Each section's chunks carry its heading after the title; positions run 0, 1, 2, ..."""
    chunks = chunk_document(_document(Section("", "Intro text."), Section("Spring tides", "Bigger tides.")))
    assert [(c.position, c.heading, c.text) for c in chunks] == [
        (0, "Title", "Intro text."),
        (1, "Title — Spring tides", "Bigger tides."),
    ]
