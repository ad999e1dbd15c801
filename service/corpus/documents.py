"""Reading a file into a document: its metadata and its text, in sections.

Markdown and plain text may open with front matter, `key: value` lines between two
`---` lines (`title`, `source`, `licence` or `license`, `url`, `key`). HTML gives its
`<title>`, `<meta name="licence|license|dc.rights|source|dc.source">`,
`<link rel="license">` and `<link rel="canonical">`. Options given to the import fill in
what a file does not say. A document without a licence is not imported: the corpus
holds openly licensed material only, and every passage a lesson cites names its licence.

Markdown headings (`#` to `######`) and HTML `h1`-`h6` start sections; a chunk carries
its document title and section heading, which full-text ranking weighs above the text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

MARKDOWN = {".md", ".markdown"}
TEXT = {".txt", ".text"}
HTML = {".html", ".htm"}
SUPPORTED = MARKDOWN | TEXT | HTML

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_KEYS = {"license": "licence", "rights": "licence", "dc.rights": "licence", "dc.source": "source"}


class UnreadableDocument(ValueError):
    """The file cannot become a document; the message says why (shown in the import report)."""


@dataclass(frozen=True, slots=True)
class Section:
    heading: str
    text: str


@dataclass(frozen=True, slots=True)
class Document:
    key: str
    title: str
    source: str
    licence: str
    url: str | None
    path: str
    sections: tuple[Section, ...]
    content_hash: str


@dataclass
class Defaults:
    """What the import options say for files that do not say it themselves."""

    licence: str | None = None
    source: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def read_document(path: Path, defaults: Defaults | None = None) -> Document:
    """The document in `path`; `UnreadableDocument` names what is wrong with it."""
    defaults = defaults or Defaults()
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise UnreadableDocument(f"unsupported file type {suffix or '(none)'}: Markdown, text or HTML only")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableDocument(f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument("not UTF-8 text") from exc
    if suffix in HTML:
        meta, sections = _html(text)
    else:
        meta, body = _front_matter(text)
        sections = _markdown_sections(body) if suffix in MARKDOWN else _plain_sections(body)
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise UnreadableDocument("no text")
    title = meta.get("title") or next((s.heading for s in sections if s.heading), "") or path.stem
    licence = meta.get("licence") or defaults.licence
    if not licence:
        raise UnreadableDocument("no licence: add `licence:` front matter or pass --licence")
    source = meta.get("source") or defaults.source or title
    url = meta.get("url") or None
    resolved = str(path.resolve())
    digest = hashlib.sha256(raw).hexdigest()
    return Document(
        key=meta.get("key") or url or resolved,
        title=title,
        source=source,
        licence=licence,
        url=url,
        path=resolved,
        sections=tuple(sections),
        content_hash=_content_hash(digest, licence, source),
    )


def _content_hash(file_digest: str, licence: str, source: str) -> str:
    # Options count as content: importing the same file with another licence updates it.
    return hashlib.sha256(f"{file_digest}\0{licence}\0{source}".encode()).hexdigest()


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    match = _FRONT_MATTER.match(text)
    if match is None:
        return {}, text
    meta: dict[str, str] = {}
    for line in match.group(1).splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            key = name.strip().lower()
            meta[_KEYS.get(key, key)] = value.strip().strip("\"'")
    return meta, text[match.end() :]


def _markdown_sections(body: str) -> list[Section]:
    sections: list[Section] = []
    heading, lines = "", []
    fenced = False
    for line in body.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match is None:
            lines.append(line)
            continue
        sections.append(Section(heading, "\n".join(lines)))
        heading, lines = _inline(match.group(2)), []
    sections.append(Section(heading, "\n".join(lines)))
    return [Section(s.heading, _inline(s.text)) for s in sections]


def _inline(text: str) -> str:
    """Markdown emphasis and links as the words a reader sees."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    return re.sub(r"(\*\*|\*|`)(\S(?:.*?\S)?)\1", r"\2", text)


def _plain_sections(body: str) -> list[Section]:
    return [Section("", body)]


class _HtmlText(HTMLParser):
    """Text, headings and metadata of an HTML page; scripts, styles and navigation left out."""

    BLOCKS = frozenset({"p", "div", "li", "br", "tr", "section", "article", "blockquote", "pre", "dd", "dt"})
    SKIPPED = frozenset({"script", "style", "nav", "header", "footer", "noscript", "template", "svg"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.sections: list[Section] = []
        self._heading = ""
        self._parts: list[str] = []
        self._in_heading: list[str] | None = None
        self._in_title = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag in self.SKIPPED:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "meta":
            name = (values.get("name") or values.get("property") or "").lower()
            key = _KEYS.get(name, name)
            if key in {"licence", "source"} and values.get("content"):
                self.meta.setdefault(key, values["content"].strip())
        elif tag == "link":
            rel = values.get("rel", "").lower().split()
            if "license" in rel and values.get("href"):
                self.meta.setdefault("licence", values["href"].strip())
            if "canonical" in rel and values.get("href"):
                self.meta.setdefault("url", values["href"].strip())
        elif re.fullmatch(r"h[1-6]", tag) and not self._skip:
            self._flush()
            self._in_heading = []
        elif tag in self.BLOCKS:
            self._parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag) and self._in_heading is not None:
            self._heading = " ".join("".join(self._in_heading).split())
            self._in_heading = None
        elif tag in self.BLOCKS:
            self._parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.meta["title"] = self.meta.get("title", "") + data.strip()
        elif self._skip:
            return
        elif self._in_heading is not None:
            self._in_heading.append(data)
        else:
            self._parts.append(data)

    def _flush(self) -> None:
        text = "".join(self._parts)
        paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
        self.sections.append(Section(self._heading, "\n\n".join(p for p in paragraphs if p)))
        self._parts = []

    def close(self) -> None:
        super().close()
        self._flush()


def _html(text: str) -> tuple[dict[str, str], list[Section]]:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return parser.meta, parser.sections
