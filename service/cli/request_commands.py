"""`reeltrace submit`, `status` and `trace`: the API from the command line."""

from __future__ import annotations

import uuid
from typing import Any

import typer
from rich.table import Table

from service.cli.common import console, fail, one_shot_settings, out
from service.cli.corpus import sources_table
from service.cli.follow import TERMINAL, follow
from service.cli.http_client import ApiClient, ApiError, api_url
from service.settings import Settings

STATUS_STYLE = {
    "pending": "yellow",
    "generating": "cyan",
    "completed": "green",
    "failed": "red",
    "timeout": "red",
    "in_progress": "cyan",
    "skipped": "dim",
}
# The API's body fields as `submit` takes them, so a 422 names what the user typed.
SUBMIT_FLAGS = {
    "body.prompt": "PROMPT",
    "body.user_id": "--user-id",
    "body.guild_id": "--guild-id",
    "body.channel_id": "--channel-id",
    "body.pipeline": "--pipeline",
    "body.duration_seconds": "--duration",
    "body.aspect_ratio": "--aspect-ratio",
    "body.resolution": "--resolution",
    "body.callback_url": "--callback-url",
    "body.topic": "--topic",
    "body.learning_objective": "--learning-objective",
    "body.request_id": "--request-id",
}


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(status)
    app.command()(trace)


def _client(settings: Settings) -> ApiClient:
    key = settings.api_key.get_secret_value() if settings.api_key else None
    return ApiClient(api_url(settings), key)


def _fetch(settings: Settings, request: str) -> dict[str, Any]:
    """The request's detail (by UUID or correlation ID); an API error ends the command."""
    with _client(settings) as client:
        try:
            return client.get_request(request)
        except ApiError as exc:
            raise fail(str(exc), 1) from None


def trace_link(settings: Settings, detail: dict[str, Any]) -> str | None:
    """The request's Jaeger link: the API's own, else one built from this process's
    REELTRACE_JAEGER_URL (the server may run without it), with the API's link builder.
    """
    link = (detail.get("links") or {}).get("trace")
    if link or not detail.get("trace_id") or not settings.jaeger_url:
        return str(link) if link else None
    # Imported here: the API's schemas take a moment to load, and only this needs them.
    from service.api.links import request_links

    return request_links(settings, uuid.UUID(str(detail["id"])), detail["trace_id"]).trace


def _styled(value: str | None) -> str:
    if value is None:
        return "-"
    style = STATUS_STYLE.get(value)
    return f"[{style}]{value}[/]" if style else value


def submit(
    prompt: str = typer.Argument(..., help="What to generate."),
    user_id: str = typer.Option(..., "--user-id", help="The submitting user."),
    guild_id: str | None = typer.Option(None, "--guild-id"),
    channel_id: str | None = typer.Option(None, "--channel-id"),
    pipeline: str = typer.Option("veo", help="veo or lesson."),
    duration: int = typer.Option(8, "--duration", help="Seconds of video: 4, 6 or 8."),
    aspect_ratio: str = typer.Option("16:9", "--aspect-ratio", help="16:9 or 9:16."),
    resolution: str = typer.Option("720p", help="720p or 1080p."),
    audio: bool = typer.Option(False, "--audio/--no-audio", help="Generate audio."),
    callback_url: str | None = typer.Option(None, "--callback-url", help="Called when the request ends."),
    topic: str | None = typer.Option(None, help="Lesson topic (lesson pipeline)."),
    learning_objective: str | None = typer.Option(None, "--learning-objective"),
    request_id: str | None = typer.Option(None, "--request-id", help="Your own UUID, for idempotency."),
    wait: bool = typer.Option(False, "--wait", help="Follow the request live until it finishes."),
) -> None:
    """Submit a video request through the API (REELTRACE_API_URL, REELTRACE_API_KEY)."""
    if request_id is not None:
        try:
            uuid.UUID(request_id)
        except ValueError:
            raise fail(f"--request-id must be a UUID, not {request_id!r}") from None
    body: dict[str, Any] = {
        "user_id": user_id,
        "prompt": prompt,
        "pipeline": pipeline,
        "duration_seconds": duration,
        "aspect_ratio": aspect_ratio,
        "resolution": resolution,
        "generate_audio": audio,
    }
    optional = {
        "guild_id": guild_id,
        "channel_id": channel_id,
        "callback_url": callback_url,
        "topic": topic,
        "learning_objective": learning_objective,
        "request_id": request_id,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    with _client(one_shot_settings()) as client:
        try:
            accepted = client.submit(body)
            note = "" if accepted.get("created", True) else " (existing request)"
            out.print(
                f"request {accepted['id']} ({accepted['correlation_id']}) is {_styled(accepted['status'])}{note}"
            )
            if accepted.get("trace_id"):
                out.print(f"trace {accepted['trace_id']}")
            if accepted.get("degraded"):
                out.print("[yellow]the database is unreachable: the request runs and is recorded later[/]")
                return
            if not wait:
                return
            final = follow(client, str(accepted["id"]))
        except ApiError as exc:
            if exc.status == 422 and exc.fields:
                refused = "; ".join(
                    f"{SUBMIT_FLAGS.get(field, field)}: {message}" for field, message in exc.fields
                )
                raise fail(f"invalid input: {refused}", 1) from None
            raise fail(str(exc), 1) from None
    _print_outcome(final)
    if final["status"] != "completed":
        raise typer.Exit(1)


def _print_outcome(detail: dict[str, Any]) -> None:
    state = detail["status"]
    out.print(f"request {detail['id']} {_styled(state)}")
    if state == "completed":
        for url in detail.get("video_urls") or []:
            out.print(url, soft_wrap=True, highlight=False)
    elif state in TERMINAL:
        where = f" in {detail['error_stage']}" if detail.get("error_stage") else ""
        out.print(f"[red]error{where}:[/] {detail.get('error_message') or 'unknown'}")


def status(request: str = typer.Argument(..., help="Request UUID or correlation ID.")) -> None:
    """Show a request and its stages (and its trace link, with REELTRACE_JAEGER_URL)."""
    settings = one_shot_settings()
    detail = _fetch(settings, request)
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(style="bold", no_wrap=True)
    summary.add_column(overflow="fold")
    rows: list[tuple[str, Any]] = [
        ("id", detail["id"]),
        ("correlation id", detail["correlation_id"]),
        ("status", _styled(detail["status"])),
        ("pipeline", detail["pipeline"]),
        ("user / guild", f"{detail['user_id']} / {detail.get('guild_id') or '-'}"),
        ("prompt", detail["prompt"]),
        ("current stage", detail.get("current_stage") or "-"),
        ("progress", f"{detail['progress_percentage']}%"),
        ("created", detail["created_at"]),
        ("started", detail.get("started_at") or "-"),
        ("completed", detail.get("completed_at") or "-"),
        (
            "duration",
            f"{detail['duration_ms'] / 1000:.1f} s" if detail.get("duration_ms") is not None else "-",
        ),
        ("trace id", detail.get("trace_id") or "-"),
    ]
    link = trace_link(settings, detail)
    if link:
        rows.append(("trace", link))
    for url in detail.get("video_urls") or []:
        rows.append(("video", url))
    if detail.get("error_message"):
        rows.append(("error", f"{detail['error_message']} ({detail.get('error_stage') or 'request'})"))
    for name, value in rows:
        summary.add_row(name, str(value))
    out.print(summary)
    stages = Table(title="stages")
    # Fold, never "…": a stage name or a time is read (and copied) whole.
    for column in ("#", "stage", "status", "attempts", "started", "duration", "error"):
        stages.add_column(column, overflow="fold")
    for stage in detail["stages"]:
        duration = stage.get("duration_seconds")
        stages.add_row(
            str(stage["order"]),
            stage["name"],
            _styled(stage["status"]),
            str(stage["attempts"]),
            stage.get("started_at") or "-",
            f"{duration:.1f} s" if duration is not None else "-",
            stage.get("error_message") or "",
        )
    out.print(stages)
    retrieved = sources_table(detail)
    if retrieved is not None:
        out.print(retrieved)


def trace(request: str = typer.Argument(..., help="Request UUID or correlation ID.")) -> None:
    """Print the link to the request's trace in Jaeger (REELTRACE_JAEGER_URL), as the last line."""
    settings = one_shot_settings()
    detail = _fetch(settings, request)
    trace_id = detail.get("trace_id")
    name = f"request {detail['id']} ({detail['correlation_id']})"
    if not trace_id:
        raise fail(f"{name} has no trace: telemetry was off when it was submitted", 1)
    out.print(f"{name} trace {trace_id}", highlight=False, markup=False)
    link = trace_link(settings, detail)
    if link is None:
        # Not an error: the trace exists and its ID finds it in Jaeger's search; only
        # the base to make a link of it is missing. The note goes to stderr, so stdout
        # holds only the answer.
        console.print(
            f"REELTRACE_JAEGER_URL is unset: no link; search Jaeger for trace {trace_id}",
            highlight=False,
        )
        return
    out.print(link, soft_wrap=True, highlight=False, markup=False)
