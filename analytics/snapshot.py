"""The snapshot directory: versions, the published manifest, locking and pruning.

    <root>/manifest.json                      the published manifest (the pointer)
    <root>/versions/v00000007/<table>/day=2026-01-31/<file>.parquet
    <root>/staging/                           work in progress, never read
    <root>/.lock                              held by the export running now

A version is written completely (files and directories fsynced) before the
manifest naming it replaces the previous one with os.replace, which is atomic; a
reader follows only the published manifest, so it never sees a half-written
snapshot, and an export killed at any point leaves the previous one intact.
Day partitions an export did not touch are hard links to the previous version's
files, so a version costs only what changed. The previous version is kept after a
publish, for readers that resolved it just before.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from analytics.errors import ExportInProgress, SnapshotCorrupt, SnapshotNotFound

FORMAT = 1
MANIFEST = "manifest.json"
VERSIONS = "versions"
STAGING = "staging"
LOCK = ".lock"


@dataclass(frozen=True)
class DataFile:
    path: str  # relative to the snapshot root
    rows: int


@dataclass(frozen=True)
class TableFiles:
    rows: int
    partitions: dict[str, list[DataFile]]  # day (YYYY-MM-DD) -> files

    def files(self) -> list[DataFile]:
        return [f for day in sorted(self.partitions) for f in self.partitions[day]]


@dataclass(frozen=True)
class Manifest:
    version: str
    sequence: int
    previous: str | None
    watermark: datetime  # every row stamped before it is in the snapshot
    window_start: datetime | None  # None: a full read of PostgreSQL
    exported_at: datetime
    tables: dict[str, TableFiles]
    delta_rows: dict[str, int] = field(default_factory=dict)
    purged_requests: int = 0

    def rows(self, table: str) -> int:
        return self.tables[table].rows if table in self.tables else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "sequence": self.sequence,
            "previous": self.previous,
            "watermark": self.watermark.isoformat(),
            "window_start": None if self.window_start is None else self.window_start.isoformat(),
            "exported_at": self.exported_at.isoformat(),
            "row_counts": {name: t.rows for name, t in self.tables.items()},
            "delta_rows": self.delta_rows,
            "purged_requests": self.purged_requests,
            "tables": {
                name: {
                    "rows": t.rows,
                    "partitions": {
                        day: [{"path": f.path, "rows": f.rows} for f in files]
                        for day, files in sorted(t.partitions.items())
                    },
                }
                for name, t in self.tables.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        if data.get("format") != FORMAT:
            raise SnapshotCorrupt(f"unknown snapshot format {data.get('format')!r}")
        window = data.get("window_start")
        return cls(
            version=data["version"],
            sequence=int(data["sequence"]),
            previous=data.get("previous"),
            watermark=datetime.fromisoformat(data["watermark"]),
            window_start=None if window is None else datetime.fromisoformat(window),
            exported_at=datetime.fromisoformat(data["exported_at"]),
            tables={
                name: TableFiles(
                    rows=int(t["rows"]),
                    partitions={
                        day: [DataFile(f["path"], int(f["rows"])) for f in files]
                        for day, files in t["partitions"].items()
                    },
                )
                for name, t in data["tables"].items()
            },
            delta_rows={k: int(v) for k, v in data.get("delta_rows", {}).items()},
            purged_requests=int(data.get("purged_requests", 0)),
        )


def read_manifest(root: Path) -> Manifest:
    """The published manifest; SnapshotNotFound before the first export."""
    path = root / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SnapshotNotFound(f"no snapshot in {root}: run `reeltrace export` first") from None
    except (OSError, ValueError) as exc:
        raise SnapshotCorrupt(f"cannot read {path}: {exc}") from exc
    try:
        return Manifest.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotCorrupt(f"{path} is not a snapshot manifest: {exc}") from exc


def current_manifest(root: Path) -> Manifest | None:
    try:
        return read_manifest(root)
    except SnapshotNotFound:
        return None


def version_dir(root: Path, version: str) -> Path:
    return root / VERSIONS / version


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(top: Path) -> None:
    """Flush every new file and every directory below `top`.

    A file with more than one link is shared with the previous version, which was
    flushed when that version was published, so it is skipped.
    """
    for dirpath, _dirs, files in os.walk(top, topdown=False):
        for name in files:
            path = Path(dirpath) / name
            if path.stat().st_nlink == 1:
                fsync_path(path)
        fsync_path(Path(dirpath))


def publish(root: Path, manifest: Manifest) -> None:
    """Make `manifest` the one readers see, atomically and durably."""
    body = json.dumps(manifest.to_json(), indent=2, sort_keys=True).encode()
    vdir = version_dir(root, manifest.version)
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / MANIFEST).write_bytes(body)
    fsync_tree(vdir)
    fsync_path(vdir.parent)
    tmp = root / f".{MANIFEST}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / MANIFEST)
    fsync_path(root)


def clean(root: Path, keep: set[str]) -> list[str]:
    """Remove staging work and every version not in `keep`; returns the removed versions."""
    shutil.rmtree(root / STAGING, ignore_errors=True)
    for stray in root.glob(f".{MANIFEST}.*.tmp"):
        stray.unlink(missing_ok=True)
    removed = []
    versions = root / VERSIONS
    if versions.is_dir():
        for entry in sorted(versions.iterdir()):
            if entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
    return removed


def kept_versions(manifest: Manifest | None) -> set[str]:
    if manifest is None:
        return set()
    return {manifest.version} | ({manifest.previous} if manifest.previous else set())


@contextlib.contextmanager
def export_lock(root: Path) -> Iterator[None]:
    """Only one export writes a snapshot directory at a time (released if the process dies)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportInProgress(f"another export is writing {root}") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def link_or_copy(src: Path, dst: Path) -> None:
    """Share an immutable data file between versions (a copy where links are refused)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
