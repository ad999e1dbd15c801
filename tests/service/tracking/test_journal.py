"""The journal file itself: one replay at a time across the processes of a data dir."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from service.tracking.journal import Journal
from service.tracking.write_values import EventWrite, LogEvent, TrackingWrite


def note(n: int) -> LogEvent:
    event = EventWrite(
        request_id=uuid.uuid4(), event_type="note", message=str(n), created_at=datetime.now(UTC)
    )
    return LogEvent(event=event)


async def test_a_second_replay_leaves_the_journal_to_the_one_running(tmp_path: Path) -> None:
    """While one process replays, another process's replay (its replayer tick, `reeltrace backfill`)
    applies nothing and says so, instead of applying the same lines a second time beside it."""
    path = tmp_path / "journal" / "tracking.jsonl"
    for n in range(3):
        Journal(path).append(note(n))
    applied: list[str] = []
    nested: list[object] = []

    async def not_yet(write: TrackingWrite) -> bool:
        return False

    async def record(write: TrackingWrite) -> None:
        assert isinstance(write, LogEvent)
        applied.append(f"{write.event.message}")

    async def apply_first(write: TrackingWrite) -> None:
        await record(write)
        if len(applied) == 1:  # the other process's tick comes mid-way
            nested.append(await Journal(path).replay(record, not_yet))

    report = await Journal(path).replay(apply_first, not_yet)
    assert applied == ["0", "1", "2"]
    assert (report.applied, report.remaining, report.busy) == (3, 0, False)
    [other] = nested
    assert getattr(other, "busy", None) is True
    assert not Journal(path).has_pending()


def test_whether_writes_wait_is_known_in_memory_until_refreshed(tmp_path: Path) -> None:
    """`has_pending` answers from memory once it knows the journal empty (no file read per
    write); `refresh` reads the files and sees what another process journaled."""
    path = tmp_path / "journal" / "tracking.jsonl"
    ours, theirs = Journal(path), Journal(path)
    assert not ours.has_pending()
    theirs.append(note(1))
    assert theirs.has_pending()
    assert not ours.has_pending()
    assert ours.refresh()
    assert ours.has_pending()


async def test_a_journal_drained_by_another_process_is_seen_drained(tmp_path: Path) -> None:
    """A process that journaled writes sees the journal empty once another process replayed it."""
    path = tmp_path / "journal" / "tracking.jsonl"
    ours = Journal(path)
    ours.append(note(1))
    assert ours.has_pending()

    async def not_yet(write: TrackingWrite) -> bool:
        return False

    async def apply(write: TrackingWrite) -> None:
        return None

    report = await Journal(path).replay(apply, not_yet)
    assert report.applied == 1
    assert not ours.has_pending()


async def test_holds_names_exactly_the_requests_with_writes_waiting(tmp_path: Path) -> None:
    """`holds` is true for a request with a journaled write (appended by any process of the data
    dir), false for others, and false again once the replay has applied it."""
    path = tmp_path / "journal" / "tracking.jsonl"
    journal = Journal(path)
    waiting, later = note(1), note(2)
    journal.append(waiting)
    assert journal.holds(waiting.event.request_id)
    assert not journal.holds(later.event.request_id)
    Journal(path).append(later)  # another process's append
    assert journal.holds(later.event.request_id)

    async def not_yet(write: TrackingWrite) -> bool:
        return False

    async def apply(write: TrackingWrite) -> None:
        return None

    await journal.replay(apply, not_yet)
    assert not journal.holds(waiting.event.request_id)
    assert not journal.holds(later.event.request_id)
