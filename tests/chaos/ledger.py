"""The ledger every chaos scenario ends with: what was accepted, and that nothing was lost or doubled.

Definitions (the README's reliability section states the same):
- accepted: answered 202 by the API. Each must be a row in PostgreSQL, in a terminal status.
- generation started twice: the simulated backend's own table (`operations`) holds more
  than one operation for one request.
- write applied twice: a lifecycle event (`request_created`, `request_started`,
  `operation_started`, the terminal one) recorded more than once for a request, or a
  `stage_started` more than once for the same (stage, attempt, claim generation). A
  takeover starts the attempt left in progress again under the same number, in a new
  claim: that is a resume, not a repeat.
- callback delivered twice: a receiver got more than one distinct `X-Reeltrace-Delivery`
  id for one request. Delivery is at least once per attempt: the same id arriving again
  (an attempt whose answer was lost, a slow receiver past the timeout) is a retry of
  the one delivery, which the receiver deduplicates on the id; the ledger counts those
  repeats but they are not a second callback.
- every good receiver got its callback: each accepted request sent to a receiver that
  answers 200 reached it at least once.
- logs: no line carries a `prompt` field longer than 50 characters or any prompt's 51st
  character onwards, and none carries the API key.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.chaos.support import Receiver, Submissions

TERMINAL = {"completed", "failed", "timeout"}
COUNTED_EVENTS = ("request_tracking_degraded", "tracking_write_failed", "journal_replayed", "claim_lost",
                  "lease_lost", "run_preempted", "request_stuck")  # fmt: skip
LIFECYCLE = ("request_created", "request_started", "operation_started", "request_completed",
             "request_failed", "request_timeout")  # fmt: skip


@dataclass
class Ledger:
    scenario: str
    accepted: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    not_terminal: list[str] = field(default_factory=list)
    generations: int = 0
    started_twice: list[str] = field(default_factory=list)
    writes_twice: list[Any] = field(default_factory=list)
    resumed_attempts: int = 0
    callbacks: dict[str, dict[str, int]] = field(default_factory=dict)
    delivered_twice: list[str] = field(default_factory=list)
    good_missing: list[str] = field(default_factory=list)
    log_lines: int = 0
    # How often the faults showed in the logs (degraded submissions, lost claims, replays).
    log_events: dict[str, int] = field(default_factory=dict)
    long_prompts: list[str] = field(default_factory=list)
    keys_logged: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"chaos ledger: {self.scenario}"]
        for name, value in vars(self).items():
            if name != "scenario":
                shown = value if not isinstance(value, list) else f"{len(value)} {value[:3]}"
                lines.append(f"  {name}: {shown}")
        return "\n".join(lines)

    def assert_holds(self) -> None:
        assert self.missing == [], "accepted requests missing from PostgreSQL"
        assert self.not_terminal == [], "accepted requests not terminal"
        assert self.started_twice == [], "a generation started twice for one request"
        assert self.writes_twice == [], "a write applied twice"
        assert self.delivered_twice == [], "a callback delivered twice (two delivery ids for one request)"
        assert self.good_missing == [], "a good receiver missed a callback"
        assert self.long_prompts == [], "a log line carries more than 50 characters of a prompt"
        assert self.keys_logged == [], "a log line carries the API key"


def _rows(database_url: str, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return list(conn.execute(sql.encode(), params or {}).fetchall())


def take(
    scenario: str,
    *,
    database_url: str,
    data_dir: Path,
    logs: list[Path],
    submissions: Submissions,
    receivers: dict[str, Receiver] | None = None,
    good: tuple[str, ...] = ("good",),
    key: str | None = None,
    out: Path | None = None,
) -> Ledger:
    """Take the ledger, print it (and write it to `out`); the caller asserts it holds."""
    ledger = Ledger(scenario, accepted=len(submissions.accepted), refused=dict(submissions.refused))
    ids = list(submissions.accepted)
    found = dict(_rows(database_url, "SELECT id, status::text FROM video_requests WHERE id = ANY(%(ids)s)",
                       {"ids": ids}))  # fmt: skip
    ledger.by_status = dict(Counter(found.values()))
    ledger.missing = [str(rid) for rid in ids if rid not in found]
    ledger.not_terminal = [str(rid) for rid, status in found.items() if status not in TERMINAL]

    sim = data_dir / "sim" / "operations.sqlite3"
    if sim.exists():
        with sqlite3.connect(sim) as db:
            per_request = Counter(r[0] for r in db.execute("SELECT request_id FROM operations"))
        ledger.generations = sum(per_request.values())
        ledger.started_twice = [rid for rid, n in per_request.items() if n > 1]

    ledger.writes_twice = _rows(
        database_url,
        "SELECT request_id, event_type, count(*) FROM request_events WHERE event_type = ANY(%(types)s)"
        " GROUP BY 1, 2 HAVING count(*) > 1",
        {"types": list(LIFECYCLE)},
    ) + _rows(
        database_url,
        "SELECT request_id, stage_name, data->>'attempt', data->>'claim_generation', count(*)"
        " FROM request_events WHERE event_type = 'stage_started' GROUP BY 1, 2, 3, 4 HAVING count(*) > 1",
    )
    ledger.resumed_attempts = _rows(
        database_url,
        "SELECT count(*) FROM (SELECT 1 FROM request_events WHERE event_type = 'stage_started'"
        " GROUP BY request_id, stage_name, data->>'attempt' HAVING count(*) > 1) AS resumed",
    )[0][0]

    for kind, receiver in (receivers or {}).items():
        sent_here = {
            str(rid) for rid, sent in submissions.accepted.items() if sent.get("callback_url") == receiver.url
        }
        ids_per_request: dict[str, set[str]] = {}
        for rid, delivery in receiver.calls:
            ids_per_request.setdefault(rid, set()).add(delivery)
        ledger.callbacks[kind] = {
            "requests": len(sent_here),
            "received": len(ids_per_request),
            "calls": len(receiver.calls),
            "repeats_of_one_delivery": len(receiver.calls) - sum(len(d) for d in ids_per_request.values()),
        }
        ledger.delivered_twice += [f"{kind}:{rid}" for rid, d in ids_per_request.items() if len(d) > 1]
        if kind in good:
            ledger.good_missing += [f"{kind}:{rid}" for rid in sent_here if rid not in ids_per_request]

    tails = [p[50:] for p in submissions.prompts]
    for log in logs:
        if not log.exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            ledger.log_lines += 1
            if key and key in line:
                ledger.keys_logged.append(f"{log.name}: {line[:200]}")
            if any(tail in line for tail in tails):
                ledger.long_prompts.append(f"{log.name}: {line[:200]}")
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if record.get("event") in COUNTED_EVENTS:
                name = str(record["event"])
                ledger.log_events[name] = ledger.log_events.get(name, 0) + 1
            if len(str(record.get("prompt", ""))) > 50:
                ledger.long_prompts.append(f"{log.name}: {line[:200]}")

    text = ledger.render()
    print(text)  # noqa: T201 - the ledger is the scenario's report (pytest -s shows it)
    if out is not None:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return ledger


def new_ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]
