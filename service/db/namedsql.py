"""Named SQL: the service's statements, in `.sql` files beside the repositories that run them.

A file holds blocks headed `-- name: <query_name>`, as `analytics/namedsql.py` reads
them (in the manner of procrastinate's `queries.sql`). A statement is written with
psycopg's binds, `%(name)s`, a literal `%` doubled, and runs exactly as written. The
comment lines right under a header document the statement and are not sent. A file
is read once, on its first lookup: nothing is read at import.

    KEYS = NamedSql("service.auth", "sql/keys.sql")
    await database.fetch(KEYS["touch_key"], {"key_hash": key_hash})
"""

from __future__ import annotations

import re
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class UnknownQuery(LookupError):
    """A statement looked up by a name its file does not define."""


def parse(text: str, source: str = "<text>") -> dict[str, str]:
    """The statements of one file, by name; text before the first header is a comment."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        lines = body.strip().splitlines()
        while lines and lines[0].lstrip().startswith("--"):
            lines.pop(0)
        statement = "\n".join(lines).strip().rstrip(";").strip()
        if not statement:
            raise ValueError(f"{source}: query {name!r} is empty")
        queries[name] = statement
    return queries


class NamedSql:
    """The named statements of one `.sql` file of a package, looked up by name."""

    __slots__ = ("_queries", "filename", "package")

    def __init__(self, package: str, filename: str) -> None:
        self.package = package
        self.filename = filename
        self._queries: dict[str, str] | None = None

    @property
    def path(self) -> str:
        """The file's path in the source tree (for messages)."""
        return f"{self.package.replace('.', '/')}/{self.filename}"

    def __getitem__(self, name: str) -> str:
        queries = self._queries if self._queries is not None else self._load()
        try:
            return queries[name]
        except KeyError:
            raise UnknownQuery(f"no query named {name!r} in {self.path}") from None

    def names(self) -> frozenset[str]:
        return frozenset(self._queries if self._queries is not None else self._load())

    def _load(self) -> dict[str, str]:
        text = resources.files(self.package).joinpath(self.filename).read_text(encoding="utf-8")
        self._queries = parse(text, self.path)
        return self._queries
