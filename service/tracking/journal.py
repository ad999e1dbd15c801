"""The local durable journal of tracking writes PostgreSQL did not receive.

One JSON line per write, appended under an exclusive file lock and fsync'd before
the append returns, so a write survives a crash of this process or the machine's
power. Replay moves the journal aside (so appends can go on), applies its writes in
order through the repository, and puts back whatever could not be applied yet.

Every write carries an event with a client-made UUID, committed in the same
transaction as the write, so replay skips a write whose event exists: nothing is
applied twice, even when a replay dies between applying and truncating. A write that can never
apply (say, a transition the request has moved past) goes to `rejected.jsonl`, with
the reason, for an operator to read: nothing is silently dropped.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog
from pydantic import TypeAdapter, ValidationError

from service.errors import ClaimLost, DatabaseUnavailable, InvalidStatusTransition, RequestNotFound
from service.tracking.write_values import TrackingWrite

log = structlog.get_logger(__name__)

_ADAPTER: TypeAdapter[TrackingWrite] = TypeAdapter(TrackingWrite)

# Every write names its request in its event; the first match is enough.
_REQUEST_ID = re.compile(rb'"request_id":"([0-9a-f-]{36})"')

Applier = Callable[[TrackingWrite], Awaitable[object]]
AppliedCheck = Callable[[TrackingWrite], Awaitable[bool]]


@dataclass
class ReplayReport:
    applied: int = 0
    already_applied: int = 0
    rejected: int = 0
    remaining: int = 0
    rejected_reasons: list[str] = field(default_factory=list)
    # Another process was replaying the journal: this replay left it to that one.
    busy: bool = False

    @property
    def complete(self) -> bool:
        return self.remaining == 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Append-only JSON-lines journal in `<data dir>/journal/`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.directory = path.parent
        self.replaying_path = path.with_suffix(".replaying.jsonl")
        self.rejected_path = path.with_name("rejected.jsonl")
        self._lock_path = path.with_suffix(".lock")
        self._replay_lock_path = path.with_suffix(".replay.lock")
        self._pending: bool | None = None  # unknown until first asked
        self._index = _PendingIndex()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def _replaying(self) -> Iterator[bool]:
        """Hold the right to replay for the block; yields False if another replay holds it.

        Every process of a data dir runs a replayer (and an operator may run `reeltrace
        backfill` beside them). Two replays at once would apply the same lines side by
        side, the later one re-applying old stage states over newer ones. The lock is
        the kernel's, so it dies with its process: a replay file found by the holder is
        always a dead replay's.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self._replay_lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _append_lines(self, path: Path, lines: list[str]) -> None:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(lines))
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, write: TrackingWrite) -> None:
        """Durably append one write (blocking; call it off the event loop)."""
        line = write.model_dump_json() + "\n"
        with self._locked():
            new_file = not self.path.exists()
            self._append_lines(self.path, [line])
            if new_file:
                _fsync_dir(self.directory)
        self._pending = True

    def has_pending(self) -> bool:
        """True if writes are waiting; asked before every write, it reads no file while
        none are known to wait (see the module's docstring)."""
        if self._pending is False:
            return False
        return self.refresh()

    def refresh(self) -> bool:
        """Whether writes wait, read from the files: sees the writes other processes journaled."""
        self._pending = self._on_disk()
        return self._pending

    def _on_disk(self) -> bool:
        try:
            return self.path.stat().st_size > 0 or self.replaying_path.exists()
        except FileNotFoundError:
            return self.replaying_path.exists()

    def holds(self, request_id: uuid.UUID) -> bool:
        """True if a write of `request_id` waits in the journal (blocking; off the event loop).

        The answer comes from the journal files themselves (any process of the data dir
        may have appended), indexed incrementally: only lines appended since the last
        call are read, so asking before every write stays cheap during a long outage.
        """
        return request_id in self._index.pending_ids(self.replaying_path, self.path)

    def pending_count(self) -> int:
        return sum(1 for _ in self._read(self.replaying_path)) + sum(1 for _ in self._read(self.path))

    @staticmethod
    def _read(path: Path) -> Iterator[str]:
        try:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        yield line
        except FileNotFoundError:
            return

    def _take(self) -> list[str]:
        """Move the journal aside for replay; returns every line still to apply."""
        with self._locked():
            if self.path.exists():
                lines = list(self._read(self.path))
                if self.replaying_path.exists():
                    # A replay died half-way: its lines are older, so they go first.
                    self._append_lines(self.replaying_path, lines)
                    self.path.unlink()
                else:
                    os.replace(self.path, self.replaying_path)
                _fsync_dir(self.directory)
            return list(self._read(self.replaying_path))

    def _give_back(self, lines: list[str]) -> None:
        """Put unapplied lines back in front of anything appended meanwhile."""
        with self._locked():
            newer = list(self._read(self.path))
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write("".join(lines + newer))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self.replaying_path.unlink(missing_ok=True)
            _fsync_dir(self.directory)
            self._pending = True

    def _finish(self) -> None:
        with self._locked():
            self.replaying_path.unlink(missing_ok=True)
            _fsync_dir(self.directory)
            self._pending = self._on_disk()  # writes appended during the replay still wait

    def _reject(self, line: str, reason: str) -> None:
        record = {"rejected_at": datetime.now(UTC).isoformat(), "reason": reason, "write": json.loads(line)}
        with self._locked():
            self._append_lines(self.rejected_path, [json.dumps(record) + "\n"])

    async def replay(self, apply: Applier, was_applied: AppliedCheck) -> ReplayReport:
        """Apply every journaled write in order, skipping those that already landed.

        Stops early, keeping the rest, if PostgreSQL goes away. Returns at once (`busy`)
        if another process is replaying.
        """
        with self._replaying() as ours:
            if not ours:
                return ReplayReport(remaining=self.pending_count(), busy=True)
            return await self._replay(apply, was_applied)

    async def _replay(self, apply: Applier, was_applied: AppliedCheck) -> ReplayReport:
        report = ReplayReport()
        lines = self._take()
        for index, line in enumerate(lines):
            try:
                write = _ADAPTER.validate_json(line)
            except ValidationError as exc:
                self._reject(line, f"unreadable: {exc.errors()[0]['msg']}")
                report.rejected += 1
                continue
            try:
                if await was_applied(write):
                    report.already_applied += 1
                    continue
                await apply(write)
                report.applied += 1
            except DatabaseUnavailable:
                rest = lines[index:]
                self._give_back(rest)
                report.remaining = len(rest)
                log.warning("journal_replay_interrupted", applied=report.applied, remaining=report.remaining)
                return report
            except (InvalidStatusTransition, RequestNotFound, ClaimLost) as exc:
                # The database has moved past this write (or never had its request, or
                # the run that made it lost its claim to another, whose writes it must
                # not overwrite): keep it for inspection rather than dropping it.
                reason = f"{type(exc).__name__}: {exc.detail} {exc.context or ''}".strip()
                self._reject(line, reason)
                report.rejected += 1
                report.rejected_reasons.append(reason)
        self._finish()
        return report


class _PendingIndex:
    """The request ids named in the journal files, read incrementally per file.

    A file is re-read from the start only when it was replaced (another inode) or
    shrank; otherwise only its new tail is parsed. Thread-safe: writes ask from
    worker threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # path -> (inode, bytes read, ids seen)
        self._files: dict[Path, tuple[int, int, set[uuid.UUID]]] = {}

    def _scan(self, path: Path) -> set[uuid.UUID]:
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._files.pop(path, None)
            return set()
        inode, offset, ids = self._files.get(path, (stat.st_ino, 0, set()))
        if inode != stat.st_ino or stat.st_size < offset:
            inode, offset, ids = stat.st_ino, 0, set()
        if stat.st_size > offset:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read(stat.st_size - offset)
            complete = chunk.rfind(b"\n") + 1  # a line still being appended is read next time
            for match in _REQUEST_ID.finditer(chunk[:complete]):
                ids.add(uuid.UUID(match.group(1).decode()))
            offset += complete
        self._files[path] = (inode, offset, ids)
        return ids

    def pending_ids(self, *paths: Path) -> set[uuid.UUID]:
        with self._lock:
            found: set[uuid.UUID] = set()
            for path in paths:
                found |= self._scan(path)
            return found
