"""`submit --wait`'s live display: a bar per stage, drawn from the request's stream.

The running stage pulses, stages waiting their turn are still and dim, finished ones
are full; once the request has ended, the notification stage (run after the terminal
status) is waited for only while a worker is still to send it.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import RenderableType
from rich.progress import BarColumn, Progress, SpinnerColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.progress_bar import ProgressBar
from rich.text import Text

from service.cli.common import console
from service.cli.http_client import ApiClient

TERMINAL = {"completed", "failed", "timeout"}
TERMINAL_EVENTS = {f"request_{s}" for s in TERMINAL}
# How long `submit --wait` waits at most, after the request has ended, for the
# notification a worker is still to send.
NOTIFY_WAIT_SECONDS = 15.0
NOTIFY_POLL_SECONDS = 0.25
# A stage still waiting its turn: still, and dim.
WAITING_STYLE = "dim"


def follow(client: ApiClient, request_id: str) -> dict[str, Any]:
    """Render live progress, one bar per stage, until the request finishes."""
    detail = client.get_request(request_id)
    progress = Progress(
        _StageSpinner(),
        _StageName("{task.description:<20}"),
        _StageBar(),
        _StageName("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    overall = progress.add_task("overall", total=100, state=detail["status"])
    stages: dict[str, TaskID] = {}
    for stage in detail["stages"]:
        task = progress.add_task(stage["name"], total=1, start=False, state=stage["status"], phase="waiting")
        stages[stage["name"]] = task
        _show_stage(progress, task, stage["status"])
    progress.update(overall, completed=detail["progress_percentage"])
    last_id: str | None = None
    with progress:
        while detail["status"] not in TERMINAL:
            for event in client.stream(request_id=request_id, last_event_id=last_id):
                last_id = event.id or last_id
                data = event.json()
                stage = data.get("stage_name")
                if stage in stages and data["event_type"].startswith(("stage_", "retry")):
                    state = {
                        "stage_started": "in_progress",
                        "stage_completed": "completed",
                        "stage_failed": "failed",
                        "stage_skipped": "skipped",
                        "retry": "retrying",
                    }.get(data["event_type"], data["event_type"])
                    attempt = (data.get("data") or {}).get("attempt")
                    progress.update(stages[stage], state=_stage_label(state, attempt))
                    _show_stage(progress, stages[stage], state)
                progress.update(overall, completed=data["progress_percentage"], state=data["status"])
                if data["event_type"] in TERMINAL_EVENTS:
                    break
            detail = client.get_request(request_id)
        detail = _settle_notification(client, request_id, detail)
        for stage in detail["stages"]:  # the bars as recorded, whatever the stream carried
            task = stages[stage["name"]]
            progress.update(task, state=_stage_label(stage["status"], stage.get("attempts")))
            _show_stage(progress, task, stage["status"])
            # The request has ended: a stage it left open is running no more.
            progress.stop_task(task)
        progress.update(overall, completed=detail["progress_percentage"], state=detail["status"])
        progress.stop_task(overall)
    return detail


class _StageSpinner(SpinnerColumn):
    """Spins only for a stage that is running: not for one still waiting its turn, nor
    for one the request left open when it ended (the last frame stays on screen)."""

    def render(self, task: Task) -> RenderableType:
        idle = not task.started or task.stop_time is not None
        return Text(" ") if idle and not task.finished else super().render(task)


class _StageBar(BarColumn):
    """A stage's bar: pulsing while the stage runs, still and dim while it waits its turn,
    full once done, still where it stopped (failed, or left open by a request that ended).

    Drawn from the stage's phase: rich itself pulses the bars of tasks not started
    (the waiting stages) and has no way back to an indeterminate bar once a total is
    set (`update(total=None)` leaves the total as it was).
    """

    def render(self, task: Task) -> ProgressBar:
        phase = task.fields.get("phase")
        if phase == "waiting":
            return ProgressBar(total=1, completed=0, width=self.bar_width, style=WAITING_STYLE)
        if phase == "running" and task.stop_time is None:
            return ProgressBar(
                total=None,
                width=self.bar_width,
                pulse=True,
                animation_time=task.get_time(),
                style=self.style,
                pulse_style=self.pulse_style,
            )
        if phase in ("running", "failed"):  # stopped: still, where it stopped
            return ProgressBar(
                total=1, completed=0, width=self.bar_width, style="red" if phase == "failed" else self.style
            )
        return super().render(task)  # done (full), and the overall bar


class _StageName(TextColumn):
    """A stage's text, dim while the stage waits its turn."""

    def render(self, task: Task) -> Text:
        text = super().render(task)
        if task.fields.get("phase") == "waiting":
            text.stylize(WAITING_STYLE)
        return text


def _stage_label(state: str, attempt: int | None) -> str:
    """A stage bar's state, with its attempt number once it is past the first."""
    return f"{state} (attempt {attempt})" if attempt and attempt > 1 else state


def _settle_notification(client: ApiClient, request_id: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The request once its notification stage has ended, when one is still coming.

    That stage runs after the terminal status, where the request's stream ends; while
    the API says a worker is still to run it (`notification_due`), a short poll shows
    its outcome (delivered, skipped, failed) instead of "pending". When none is coming
    (no worker holds the request), the answer is at once. A server too old to say is
    given NOTIFY_WAIT_SECONDS.
    """
    deadline = time.monotonic() + NOTIFY_WAIT_SECONDS
    while time.monotonic() < deadline and _notification_coming(detail):
        time.sleep(NOTIFY_POLL_SECONDS)
        detail = client.get_request(request_id)
    return detail


def _notification_coming(detail: dict[str, Any]) -> bool:
    if "notification_due" in detail:
        return bool(detail["notification_due"])
    return any(
        stage["name"] == "notification" and stage["status"] in ("pending", "in_progress")
        for stage in detail["stages"]
    )


def _show_stage(progress: Progress, task: TaskID, state: str) -> None:
    """Set a stage's phase, which its bar and spinner are drawn from."""
    if state in ("in_progress", "retrying"):
        progress.start_task(task)
        progress.update(task, phase="running")
    elif state in ("completed", "skipped"):
        progress.start_task(task)
        progress.update(task, completed=1, phase="done")
    elif state == "failed":
        progress.start_task(task)  # not waiting any more: a still bar where it stopped
        progress.stop_task(task)
        progress.update(task, phase="failed")
