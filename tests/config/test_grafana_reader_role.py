"""Migration 0002: the read-only `reeltrace_reader` role behind Grafana's PostgreSQL datasource."""

from __future__ import annotations

import base64
import hashlib
import hmac
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from service.db import migrate
from tests.support.pg import PgCluster

ROLE = "reeltrace_reader"
READABLE = (
    "video_requests",
    "request_stages",
    "request_events",
    "request_tombstones",
    "active_requests_dashboard",
    "request_metrics_summary",
    "request_rollups",
    "request_rollup_sketches",
    "stage_rollups",
)


def as_reader(url: str, statement: str) -> list[tuple[object, ...]]:
    """Run one statement with the reader's privileges and return its rows."""
    with psycopg.connect(url) as conn:
        conn.execute(f"SET ROLE {ROLE}")
        cur = conn.execute(statement.encode())
        return cur.fetchall() if cur.description else []


def role_exists(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone() is not None


def privileges_in(url: str) -> int:
    """How many objects of this database (and the database itself) grant the role anything."""
    query = """
        SELECT count(*) FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid
        WHERE r.rolname = %s
          AND (d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               OR (d.classid = 'pg_database'::regclass
                   AND d.objid = (SELECT oid FROM pg_database WHERE datname = current_database())))
    """
    with psycopg.connect(url) as conn:
        row = conn.execute(query, (ROLE,)).fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.parametrize("relation", READABLE)
def test_reader_selects_tables_and_views(database_url: str, relation: str) -> None:
    """The reader may SELECT every table and view the dashboards read."""
    assert as_reader(database_url, f"SELECT count(*) FROM {relation}") == [(0,)]


def test_reader_cannot_read_api_keys(database_url: str) -> None:
    """API key hashes stay out of the reader's reach."""
    with pytest.raises(errors.InsufficientPrivilege):
        as_reader(database_url, "SELECT count(*) FROM api_keys")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO request_tombstones (request_id, reason) VALUES (gen_random_uuid(), 'manual')",
        "UPDATE video_requests SET progress_percentage = 0",
        "DELETE FROM request_events",
        "CREATE TABLE reader_scratch (id int)",
    ],
)
def test_reader_cannot_write(database_url: str, statement: str) -> None:
    """The reader can change nothing, not even create a table of its own."""
    with pytest.raises(errors.InsufficientPrivilege):
        as_reader(database_url, statement)


def test_reader_selects_tables_created_later(database_url: str) -> None:
    """Default privileges extend SELECT to tables a later migration creates."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE later_table (id int)")
        conn.execute("INSERT INTO later_table VALUES (1)")
    assert as_reader(database_url, "SELECT id FROM later_table") == [(1,)]


def test_round_trip_keeps_the_role_other_databases_still_use(pg_cluster: PgCluster) -> None:
    """Upgrade, downgrade to base and upgrade again work while other databases grant the role."""
    name = pg_cluster.new_database(from_template=False)
    url = pg_cluster.url(name)
    try:
        migrate.upgrade(url)
        assert privileges_in(url) > 0
        migrate.downgrade(url, "base")
        # The template database still grants the role, so it must survive.
        assert role_exists(url)
        assert privileges_in(url) == 0
        migrate.upgrade(url)
        assert as_reader(url, "SELECT count(*) FROM active_requests_dashboard") == [(0,)]
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[PgCluster]:
    """A cluster of this module's own, where no other database knows the role."""
    # Not under pytest's basetemp: a pytest session starting meanwhile resets that
    # root to mode 0700, and the server runs as a user of its own that must reach it.
    with tempfile.TemporaryDirectory(prefix="reeltrace-reader-pg-") as root:
        cluster = PgCluster(Path(root))
        try:
            yield cluster
        finally:
            cluster.server.cleanup()


def reader_password_hash(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (ROLE,)).fetchone()
    assert row is not None
    return None if row[0] is None else str(row[0])


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier from pg_authid was made from `password` (RFC 5802)."""
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, _server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return method == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)


@pytest.fixture
def lone_database(own_cluster: PgCluster) -> Iterator[str]:
    """A database on the module's own cluster, which starts without the role."""
    own_cluster.execute(f"DROP ROLE IF EXISTS {ROLE}")
    name = own_cluster.new_database(from_template=False)
    yield own_cluster.url(name)
    own_cluster.drop_database(name)
    own_cluster.execute(f"DROP ROLE IF EXISTS {ROLE}")


@pytest.mark.slow
def test_downgrade_drops_the_role_nothing_else_uses(lone_database: str) -> None:
    """On a cluster where only this database uses it, the downgrade drops the role."""
    migrate.upgrade(lone_database)
    assert role_exists(lone_database)
    migrate.downgrade(lone_database, "base")
    assert not role_exists(lone_database)


@pytest.mark.slow
def test_without_a_password_the_role_has_none(lone_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without REELTRACE_READER_PASSWORD the role can log in, but not with a password."""
    monkeypatch.delenv("REELTRACE_READER_PASSWORD", raising=False)
    migrate.upgrade(lone_database)
    assert reader_password_hash(lone_database) is None


@pytest.mark.slow
def test_password_comes_from_the_environment(lone_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """REELTRACE_READER_PASSWORD at migration time becomes the role's password, quotes and all."""
    password = "it's a \\secret"
    monkeypatch.setenv("REELTRACE_READER_PASSWORD", password)
    migrate.upgrade(lone_database)
    verifier = reader_password_hash(lone_database)
    assert verifier is not None
    assert scram_matches(verifier, password)
    assert not scram_matches(verifier, "something else")
