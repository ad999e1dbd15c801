"""Named SQL: `.sql` files of blocks headed `-- name: <query_name>`, loaded once.

Every query the package runs is written once in `analytics/sql/` and looked up by
name, so the CLI, the API and the notebooks run the very same text.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """The queries of one file, by name; text before the first header is a comment."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip().rstrip(";").strip()
    return queries


@cache
def load(filename: str) -> dict[str, str]:
    """The named queries of `analytics/sql/<filename>`."""
    text = resources.files("analytics").joinpath("sql", filename).read_text(encoding="utf-8")
    return parse(text)


def query(filename: str, name: str) -> str:
    try:
        return load(filename)[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in analytics/sql/{filename}") from None
