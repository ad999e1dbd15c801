"""`reeltrace notebook`: the analytics notebook on the latest snapshot, or as an HTML page."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

import analytics
from analytics.errors import AnalyticsError
from service.cli.common import fail, one_shot_settings, out

NOTEBOOK = Path(analytics.__file__).parent / "notebooks" / "overview.py"
DEFAULT_PORT = 2718  # marimo's own default
INSTALL_HINT = "pip install 'reeltrace[notebooks]' (in a checkout: pip install -e '.[notebooks]')"


def register(app: typer.Typer) -> None:
    app.command()(notebook)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # an import hook that refuses it: not available either
        return False


def _require(*modules: str) -> None:
    """A missing optional dependency is one line naming it and the install command."""
    missing = [name for name in modules if not _importable(name)]
    if missing:
        raise fail(f"the notebook needs {' and '.join(missing)}, which is not installed: {INSTALL_HINT}", 1)


def notebook(
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the notebook as one self-contained page to FILE.")
    ] = None,
    snapshots: Annotated[
        Path | None,
        typer.Option(
            "--snapshots", help="Snapshot directory (default: REELTRACE_EXPORT_DIR or <data dir>/snapshots)."
        ),
    ] = None,
    guild: Annotated[
        str | None, typer.Option("--guild", help="The guild shown per week (default: the busiest).")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port of the notebook server.")] = DEFAULT_PORT,
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="Open it in a browser.")] = True,
    edit: Annotated[bool, typer.Option("--edit", help="Open it for editing (marimo edit).")] = False,
) -> None:
    """Open the analytics notebook (marimo) on the latest snapshot; `--html FILE` writes it as a page."""
    settings = one_shot_settings()
    root = snapshots or settings.snapshot_dir
    if html is not None:
        _require("matplotlib")
    else:
        _require("marimo", "matplotlib")
    # Both read the snapshot only here (DuckDB loads in a moment, and `--help` need not wait).
    from analytics.report import load_overview, render_html

    try:
        overview = load_overview(root, guild)  # a missing snapshot is said now, not in a browser
        page = render_html(overview) if html is not None else None
    except AnalyticsError as exc:
        raise fail(str(exc)) from None
    if html is not None and page is not None:
        try:
            html.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise fail(f"cannot write {html}: {exc.strerror or exc}") from None
        out.print(f"wrote {html} (snapshot {overview.info.version})", highlight=False, markup=False)
        return
    args = [sys.executable, "-m", "marimo", "edit" if edit else "run", str(NOTEBOOK), "--port", str(port)]
    if not browser:
        args.append("--headless")
    env = {**os.environ, "REELTRACE_EXPORT_DIR": str(root)}
    if guild:
        env["REELTRACE_NOTEBOOK_GUILD"] = guild
    out.print(f"notebook on snapshot {overview.info.version} from {root}", highlight=False, markup=False)
    sys.stdout.flush()
    # marimo takes over the process: Ctrl-C and its exit code are its own.
    os.execve(sys.executable, args, env)  # noqa: S606 (our interpreter, a fixed module)
