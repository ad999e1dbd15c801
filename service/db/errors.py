"""Driver errors as domain errors, decided here and nowhere above.

An error that means the server could not be reached (refused, reset, timed out, the
pool out of connections) becomes `DatabaseUnavailable`; the state-machine trigger's
SQLSTATE becomes `InvalidStatusTransition`. Any other SQL error (a constraint a
repository expects, say) is left as psycopg raised it, for the repository to decide.
"""

from __future__ import annotations

import psycopg

from service.errors import DatabaseUnavailable, InvalidStatusTransition, ReeltraceError

# Raised by the status guard trigger (migrations) on a change outside the state machine.
STATUS_GUARD_SQLSTATE = "RT001"
UNREACHABLE_DETAIL = "PostgreSQL is unreachable"

# psycopg_pool's PoolTimeout and PoolClosed are OperationalErrors too.
_UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError, ConnectionError, TimeoutError, OSError)


def is_unreachable(exc: BaseException) -> bool:
    """True when the error means the server could not be reached (not a SQL error)."""
    return isinstance(exc, _UNREACHABLE)


def translated(exc: BaseException) -> ReeltraceError | None:
    """The domain error `exc` stands for, or None when it is a SQL error to keep as is."""
    if getattr(exc, "sqlstate", None) == STATUS_GUARD_SQLSTATE:
        return InvalidStatusTransition(detail="Invalid status transition")
    if is_unreachable(exc):
        return DatabaseUnavailable(UNREACHABLE_DETAIL)
    return None
