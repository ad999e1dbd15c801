"""Normalising PostgreSQL URLs to the psycopg 3 driver."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url


def _psycopg(url: str) -> URL:
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+psycopg")


def sqlalchemy_url(url: str) -> str:
    """A SQLAlchemy URL for psycopg 3, which serves both the sync and async engines."""
    return _psycopg(url).render_as_string(hide_password=False)


def libpq_dsn(url: str) -> str:
    """A plain `postgresql://` DSN for psycopg.connect and command-line tools."""
    return _psycopg(url).set(drivername="postgresql").render_as_string(hide_password=False)


def redact(url: str) -> str:
    """The URL with its password hidden, for logs and messages."""
    return _psycopg(url).set(drivername="postgresql").render_as_string(hide_password=True)
