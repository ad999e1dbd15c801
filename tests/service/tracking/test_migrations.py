"""The migrations produce exactly the models' schema, and round-trip."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool, text

from service.db import migrate
from service.db.models import Base
from service.db.urls import libpq_dsn, sqlalchemy_url
from tests.support.pg import PgCluster

REPO = Path(__file__).resolve().parents[3]


def schema_diff(url: str) -> list[object]:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def objects(url: str) -> set[str]:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    query = text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'i')"
        " UNION SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public'"
        " UNION SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
        " WHERE n.nspname = 'public' AND t.typtype = 'e'"
    )
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(query)}
    finally:
        engine.dispose()


def test_fresh_database_at_head_matches_the_models(pg_cluster: PgCluster) -> None:
    """Upgrading an empty database to head yields the models' tables, columns, indexes and constraints."""
    name = pg_cluster.new_database(from_template=False)
    try:
        url = pg_cluster.url(name)
        migrate.upgrade(url)
        assert migrate.is_at_head(url)
        assert schema_diff(url) == []
    finally:
        pg_cluster.drop_database(name)


def test_downgrade_to_base_then_upgrade_again(pg_cluster: PgCluster) -> None:
    """Down to base leaves nothing behind; up to head again rebuilds the same schema."""
    name = pg_cluster.new_database(from_template=False)
    try:
        url = pg_cluster.url(name)
        migrate.upgrade(url)
        at_head = objects(url)
        assert {"video_requests", "active_requests_dashboard", "request_metrics_summary"} <= at_head
        migrate.downgrade(url, "base")
        assert objects(url) <= {"alembic_version", "pk_alembic_version", "alembic_version_pkc"}
        migrate.upgrade(url)
        assert objects(url) == at_head
        assert schema_diff(url) == []
    finally:
        pg_cluster.drop_database(name)


def _definitions(url: str) -> dict[str, str]:
    """Every function's and trigger's definition in the database, by name."""
    with psycopg.connect(libpq_dsn(url)) as conn:
        functions = conn.execute(
            """SELECT 'function ' || p.proname, pg_get_functiondef(p.oid)
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = 'public' AND p.prokind = 'f'
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"""
        ).fetchall()
        triggers = conn.execute(
            """SELECT 'trigger ' || t.tgname, pg_get_triggerdef(t.oid)
               FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE NOT t.tgisinternal AND n.nspname = 'public'"""
        ).fetchall()
    return dict(functions + triggers)


def test_the_functions_file_is_what_the_database_runs(pg_cluster: PgCluster) -> None:
    """At head, the database's functions and triggers are exactly those of the latest file in
    migrations/functions/: running the file again changes no definition and adds none."""
    latest = max((REPO / "migrations" / "functions").glob("*.sql"))
    name = pg_cluster.new_database(from_template=False)
    try:
        url = pg_cluster.url(name)
        migrate.upgrade(url)
        before = _definitions(url)
        with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
            conn.execute(latest.read_text(encoding="utf-8"))  # type: ignore[call-overload]
        assert _definitions(url) == before
        declared = set(re.findall(r"^-- (function|trigger) (\w+)", latest.read_text(), re.MULTILINE))
        assert {tuple(key.split(" ")) for key in before} == declared
    finally:
        pg_cluster.drop_database(name)
