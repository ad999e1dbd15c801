"""What PostgreSQL spent during a benchmark: its CPU, and the statements it ran.

CPU is read from the server's own accounting: the postmaster's, that of its live
children (one backend per connection, plus the background processes), and that of
the children it has already reaped (`children_user`/`children_system`, the kernel's
cutime/cstime), so a backend that exits mid-run still counts.

Statements come from `pg_stat_statements` (see `PgCluster(stat_statements=True)`),
which counts both those a client sent (`toplevel`) and those run inside the server on
their behalf (a function's statements, foreign-key checks, `pg_notify` calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psutil
import psycopg


def postgres_cpu_seconds(postmaster_pid: int) -> float:
    """User + system CPU seconds of the whole server so far."""
    main = psutil.Process(postmaster_pid)
    times = main.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in main.children():
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:  # reaped since the listing: counted by the parent next time
            continue
        total += child_times.user + child_times.system
    return total


def enable_statements(url: str) -> None:
    """Create the extension in `url`'s database (the library is preloaded by the cluster)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def reset_statements(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


@dataclass
class StatementCounts:
    sent: int = 0  # statements clients sent
    nested: int = 0  # statements run inside the server on their behalf
    top: list[tuple[int, bool, str]] = field(default_factory=list)  # (calls, toplevel, query), biggest first

    def summary(self, per: int, lines: int = 12) -> str:
        out = [f"   statements per lifecycle: {self.sent / per:.1f} sent, {self.nested / per:.1f} run inside"]
        for calls, toplevel, query in self.top[:lines]:
            text = " ".join(query.split())[:110]
            out.append(f"     {calls / per:5.2f} {'sent  ' if toplevel else 'inside'} {text}")
        return "\n".join(out)


def statement_counts(url: str, *, excluding: tuple[str, ...] = ()) -> StatementCounts:
    """Statements run in `url`'s database since the last reset; those whose text holds
    any of `excluding` (a benchmark's own polling) are left out."""
    counts = StatementCounts()
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT calls, toplevel, query FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY calls DESC"
        ).fetchall()
    for calls, toplevel, query in rows:
        if "pg_stat_statements" in query or any(part in query for part in excluding):
            continue
        if toplevel:
            counts.sent += calls
        else:
            counts.nested += calls
        counts.top.append((calls, toplevel, query))
    return counts
