"""Database work in a trace: what happened, never the statement text.

- A tracking write is recorded by `record_write` as `tracking.<event type>`
  (`tracking.stage_completed`, `tracking.request_created`, ...) with `db.system`, the
  table (`db.collection.name`) and how long it took. Inside a recording span (a stage
  attempt, the submitting HTTP request) it is an event on that span, with
  `duration_ms`; outside one (a worker's status changes between stages) it is a short
  span of that name, a child of the request's trace.
- A read is a CLIENT span named by its summary (`query_span`): `db.query.summary` is
  the operation and the tables it reads (`SELECT video_requests request_stages`), as
  the semantic conventions define it; the statement text stays out.

Why events: a span costs its creation, its processor hooks and its OTLP encoding
(trace and span IDs, resource, scope, its own attributes); an event is a name, a
timestamp and three attributes on a span already paid for. Measured with
`tests/bench/bench_telemetry.py` ("on" against "on, writes as spans"), see the
README's Telemetry section. `TRACKING_WRITES_AS_SPANS` turns the alternative on for
that comparison.

Like the untraced HTTP paths, work inside `telemetry.tracing.untraced()` (a worker's
claims, leases, watchdog sweeps) records nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

DB_SYSTEM = "postgresql"
TRACKING_WRITES_AS_SPANS = False

_tracer = trace.get_tracer("reeltrace.db")

# The operation, then each table read or written: `FROM t`, `JOIN t`, `INTO t`,
# `UPDATE t`. After FROM or JOIN, a name followed by `(` is a function
# (`unnest(...)`), not a table; after INTO it is the table and its column list.
_OPERATION = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|LISTEN|NOTIFY|CALL)\b", re.IGNORECASE)
_TABLE = re.compile(
    r"\b(?:(?:FROM|JOIN)\s+(?:ONLY\s+)?([A-Za-z_][\w.]*+)(?!\s*\()|(?:INTO|UPDATE)\s+(?:ONLY\s+)?([A-Za-z_][\w.]*+))",
    re.IGNORECASE,
)
_CTE = re.compile(r"(?:\bWITH|,)\s*([A-Za-z_]\w*)\s+AS\s*(?:MATERIALIZED\s*)?\(", re.IGNORECASE)
_KEYWORDS = frozenset({"SELECT", "LATERAL", "SET"})  # `DO UPDATE SET`, `FROM LATERAL`
_MAX_TABLES = 3


@lru_cache(maxsize=512)
def query_summary(sql: str) -> str:
    """The low-cardinality summary of a statement: its operation and up to three tables.

    Statements are few and reused, so each is summarised once (the cache's key, a
    string whose hash Python keeps, costs nothing to look up again).
    """
    operation = _OPERATION.search(sql)
    ctes = {name.lower() for name in _CTE.findall(sql)}
    tables: list[str] = []
    for read, written in _TABLE.findall(sql):
        name = read or written
        if name.lower() in ctes or name.lower() in tables or name.upper() in _KEYWORDS:
            continue
        tables.append(name.lower())
    words = [operation.group(1).upper() if operation else sql.split(None, 1)[0].upper()]
    return " ".join(words + tables[:_MAX_TABLES])


@contextmanager
def query_span(sql: str) -> Iterator[Span | None]:
    """A CLIENT span around one read statement, named by its summary (None if suppressed)."""
    if not is_instrumentation_enabled():
        yield None
        return
    summary = query_summary(sql)
    with _tracer.start_as_current_span(
        summary,
        kind=SpanKind.CLIENT,
        attributes={"db.system": DB_SYSTEM, "db.query.summary": summary},
    ) as span:
        yield span


def start_query_span(sql: str) -> Span | None:
    """A started CLIENT span for a statement whose end is seen elsewhere (an event hook)."""
    if not is_instrumentation_enabled():
        return None
    summary = query_summary(sql)
    return _tracer.start_span(
        summary, kind=SpanKind.CLIENT, attributes={"db.system": DB_SYSTEM, "db.query.summary": summary}
    )


def end_query_span(span: Span | None, error: BaseException | None = None) -> None:
    if span is None:
        return
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.set_attribute("error.type", type(error).__name__)
    span.end()


def record_write(
    name: str,
    table: str,
    started_ns: int,
    *,
    journaled: bool = False,
    error: str | None = None,
    folded: bool = False,
    batch: int | None = None,
) -> None:
    """Record one tracking write that started at `started_ns` (`time.time_ns()`) and ended now.

    `journaled`: PostgreSQL was not written, the write went to the local journal.
    `error`: the write was refused (the type of the error, e.g. an invalid transition).
    `folded`: the change was made here and waits to be sent with the run's next
    statement (recorded where it happened, so a stage's changes show on its own span).
    `batch`: the statement sent this many folded changes (`db.operation.batch.size`).
    """
    if not is_instrumentation_enabled():
        return
    ended_ns = time.time_ns()
    attributes: dict[str, AttributeValue] = {"db.system": DB_SYSTEM, "db.collection.name": table}
    if journaled:
        attributes["reeltrace.journaled"] = True
    if error is not None:
        attributes["error.type"] = error
    if folded:
        attributes["reeltrace.folded"] = True
    if batch is not None:
        attributes["db.operation.batch.size"] = batch
    current = trace.get_current_span()
    if current.is_recording() and not TRACKING_WRITES_AS_SPANS:
        attributes["duration_ms"] = round((ended_ns - started_ns) / 1e6, 3)
        current.add_event(name, attributes, timestamp=started_ns)
        return
    if not current.get_span_context().is_valid:
        return  # no request's trace to join: a lone write would be a root span of its own
    span = _tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes, start_time=started_ns)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=ended_ns)
