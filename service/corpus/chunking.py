"""Splitting a document's sections into overlapping chunks.

A chunk holds at most `CHUNK_CHARS` (1,200) characters of new text, about 200 to 300
tokens of English: small enough that five of them fit a script prompt, large enough to
carry a whole idea. Text is cut at paragraph boundaries, a paragraph too long for one
chunk at sentence boundaries, and a sentence too long at word boundaries. Each chunk
after the first of a section starts with the last `OVERLAP_CHARS` (200) characters of
the one before (from a word boundary), so an idea cut at a boundary is still whole in
one of the two. Sections never share a chunk: a chunk's heading is its section's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.corpus.documents import Document

CHUNK_CHARS = 1200
OVERLAP_CHARS = 200

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    position: int
    heading: str
    text: str


def chunk_document(document: Document, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[Chunk]:
    """The document's chunks, numbered from 0 in reading order."""
    chunks: list[Chunk] = []
    for section in document.sections:
        heading = document.title
        if section.heading and section.heading != document.title:
            heading = f"{document.title} — {section.heading}"
        for text in split_text(section.text, size, overlap):
            chunks.append(Chunk(len(chunks), heading, text))
    return chunks


def split_text(text: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    """`text` in pieces of at most `size` characters plus the overlap carried from the one before."""
    chunks: list[str] = []
    current = ""
    for piece, opens_paragraph in _units(text, size):
        if current and len(current) + 1 + len(piece) > size:
            chunks.append(current)
            current = _tail(current, overlap)
        separator = "\n\n" if opens_paragraph else " "
        current = f"{current}{separator}{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _units(text: str, size: int) -> list[tuple[str, bool]]:
    """Paragraphs, each cut into sentences, then words, until every unit fits `size`; each unit
    with whether it opens a paragraph (joined by a blank line) or continues one (by a space)."""
    units: list[tuple[str, bool]] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        if len(paragraph) <= size:
            units.append((paragraph, True))
            continue
        pieces = [
            piece
            for sentence in _SENTENCE_END.split(paragraph)
            for piece in (_words(sentence, size) if len(sentence) > size else [sentence])
        ]
        units.extend((piece, i == 0) for i, piece in enumerate(pieces))
    return units


def _words(sentence: str, size: int) -> list[str]:
    out: list[str] = []
    current = ""
    for word in sentence.split(" "):
        word = word[:size]  # a "word" longer than a chunk (a URL, a hash) is cut
        if current and len(current) + 1 + len(word) > size:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        out.append(current)
    return out


def _tail(text: str, overlap: int) -> str:
    """The last `overlap` characters of `text`, starting at a word."""
    if overlap <= 0 or len(text) <= overlap:
        return text if overlap > 0 else ""
    tail = text[-overlap:]
    space = tail.find(" ")
    return tail[space + 1 :] if space >= 0 else tail
