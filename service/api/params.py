"""Query parameter types the routes share: ISO 8601 date-times that arithmetic cannot
overflow (pipeline names are `service.video_request.PipelineName`).

Pydantic's lax datetime parsing takes a number (`since=0.5`) as a Unix timestamp,
which the OpenAPI `date-time` format forbids; a naive time compared with an aware one
raises; and a time at the edge of Python's range (`0001-01-01`) overflows the moment
a window is computed from it. Each is a client's mistake, so each is a 422 naming
the parameter, never a 500.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

# The range every route can compute windows in (a day of margin on either side of
# Python's own limits, and PostgreSQL's timestamptz covers far more).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)

# A calendar date with a time: `2026-12-05T10:00:00Z`, `...+01:00`, `2026-12-05 10:00`.
_ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_date_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and _ISO_DATE_TIME.match(value):
        try:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise ValueError("not a valid ISO 8601 date-time") from None
    else:
        raise ValueError("must be an ISO 8601 date-time, such as 2026-12-05T10:00:00Z")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # no offset given: UTC, as the API answers in
    if not EARLIEST <= parsed <= LATEST:
        raise ValueError(f"must be between {EARLIEST.date()} and {LATEST.date()}")
    return parsed


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_date_time)]
