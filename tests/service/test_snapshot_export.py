"""The periodic export the service runs every REELTRACE_EXPORT_INTERVAL seconds."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from analytics.errors import ExportCancelled
from analytics.export import ExportResult, export_snapshot
from analytics.snapshot import read_manifest
from service import snapshot_export
from service.settings import Settings
from service.snapshot_export import run_periodic_export


async def _run_for(settings: Settings, url: str, seconds: float) -> list[dict[str, object]]:
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(run_periodic_export(settings, url, stop))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    return logs


async def test_exports_repeat_at_the_interval(settings: Settings, database_url: str, tmp_path: Path) -> None:
    """With an interval set, a snapshot is published at once and again after each interval."""
    configured = settings.model_copy(update={"export_interval": 0.3, "export_dir": tmp_path / "snap"})
    logs = await _run_for(configured, database_url, 2.0)
    done = [e for e in logs if e["event"] == "export_done"]
    assert len(done) >= 2
    assert read_manifest(tmp_path / "snap").sequence == len(done)


async def test_no_interval_means_no_export(settings: Settings, database_url: str) -> None:
    """Without REELTRACE_EXPORT_INTERVAL the task returns at once and writes nothing."""
    logs = await _run_for(settings, database_url, 0.05)
    assert [e["event"] for e in logs] == ["export_disabled"]
    assert not settings.snapshot_dir.exists()


async def test_a_failed_export_is_logged_and_retried(settings: Settings, tmp_path: Path) -> None:
    """An unreachable database is logged as export_failed each round; the loop goes on."""
    configured = settings.model_copy(update={"export_interval": 0.2, "export_dir": tmp_path / "snap"})
    logs = await _run_for(configured, "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", 1.0)
    failed = [e for e in logs if e["event"] == "export_failed"]
    assert len(failed) >= 2
    assert failed[0]["error_type"] == "SourceUnavailable"


async def test_an_unexpected_error_does_not_end_the_periodic_export(
    settings: Settings, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error outside AnalyticsError and OSError is logged as export_failed; the next round exports."""
    calls = 0

    def flaky(dsn: str, root: Path, cancel: threading.Event | None = None) -> ExportResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in one round")
        return export_snapshot(dsn, root, cancel=cancel)

    monkeypatch.setattr(snapshot_export, "export_snapshot", flaky)
    configured = settings.model_copy(update={"export_interval": 0.2, "export_dir": tmp_path / "snap"})
    logs = await _run_for(configured, database_url, 1.0)
    events = [
        e["event"] for e in logs if str(e["event"]).startswith("export_") and e["event"] != "export_scheduled"
    ]
    assert events[0] == "export_failed"
    assert "export_done" in events[1:]
    assert read_manifest(tmp_path / "snap").sequence >= 1


async def test_stopping_cancels_a_running_export(
    settings: Settings, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shutdown does not wait for a long export: the running one is cancelled and logged."""

    def long_export(dsn: str, root: Path, cancel: threading.Event | None = None) -> ExportResult:
        assert cancel is not None
        if cancel.wait(timeout=30):
            raise ExportCancelled("the export was cancelled")
        raise AssertionError("never cancelled")

    monkeypatch.setattr(snapshot_export, "export_snapshot", long_export)
    configured = settings.model_copy(update={"export_interval": 60, "export_dir": tmp_path / "snap"})
    logs = await _run_for(configured, database_url, 0.3)
    # Not cancelled, the export would have failed with "never cancelled" after 30 s.
    assert [e["event"] for e in logs if e["event"] != "export_scheduled"] == ["export_cancelled"]
