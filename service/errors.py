"""The error hierarchy: one root, each subclass fixing the HTTP status it maps to.

Expected outcomes are 4xx so that a 5xx always means a bug or an outage.
"""

from __future__ import annotations

from typing import Any


class ReeltraceError(Exception):
    """Root of every error reeltrace raises on purpose."""

    status_code = 500
    error = "internal_error"

    def __init__(self, detail: str = "", **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class ConfigurationError(ReeltraceError):
    """A setting is missing or invalid; the message names the variable."""

    error = "configuration_error"


class NotFoundError(ReeltraceError):
    status_code = 404
    error = "not_found"


class RequestNotFound(NotFoundError):
    """No request has this UUID or correlation ID."""


class InvalidStatusTransition(ReeltraceError):
    """A status change outside pending -> generating -> completed|failed|timeout."""

    status_code = 409
    error = "invalid_status_transition"

    def __init__(self, detail: str = "Invalid status transition", **context: Any) -> None:
        super().__init__(detail, **context)


class DatabaseUnavailable(ReeltraceError):
    """PostgreSQL could not be reached (a tracking write or read, an API key, a lease...).

    The API's answer keeps the code clients already handle: 503 `tracking_unavailable`.
    """

    status_code = 503
    error = "tracking_unavailable"


class ValidationFailed(ReeltraceError):
    status_code = 422
    error = "validation_error"


class Unauthorized(ReeltraceError):
    status_code = 401
    error = "unauthorized"


class Forbidden(ReeltraceError):
    status_code = 403
    error = "forbidden"


class RateLimited(ReeltraceError):
    status_code = 429
    error = "rate_limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class BudgetExceeded(ReeltraceError):
    """A submission would take a user or guild past its daily or monthly budget.

    402 rather than 429: waiting a little does not help (the budget resets at the
    day's or month's end, or when an operator raises it), and clients that retry on
    429 would keep hammering a limit that is not about rate.
    """

    status_code = 402
    error = "budget_exceeded"

    def __init__(
        self, detail: str, *, scope: str, spent_usd: float, limit_usd: float, resets_at: str
    ) -> None:
        super().__init__(detail, scope=scope, spent_usd=spent_usd, limit_usd=limit_usd, resets_at=resets_at)
        self.scope = scope
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        self.resets_at = resets_at


class SnapshotUnavailable(ReeltraceError):
    """No analytics snapshot has been published yet, or it cannot be read."""

    status_code = 503
    error = "snapshot_unavailable"


class ClaimLost(ReeltraceError):
    """A run's write was refused: its claim on the request was taken over (or ended).

    Another worker (or the watchdog) now owns the request; the run must stop at once,
    making no further write and no further external call.
    """

    status_code = 409
    error = "claim_lost"
