"""The overview's data, read once from the latest snapshot, and its page as HTML.

The marimo notebook (`analytics/notebooks/overview.py`) shows this interactively;
`reeltrace notebook --html FILE` writes it as one self-contained page (charts inlined
as SVG, no script, nothing fetched from elsewhere), readable offline and attachable
to a ticket.
"""

from __future__ import annotations

import html
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platformdirs import user_data_path

from analytics import queries
from analytics.reader import SnapshotInfo, open_snapshot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from analytics.queries import GuildStats, Rows


def default_snapshot_dir() -> Path:
    """Where `reeltrace export` writes by default: REELTRACE_EXPORT_DIR, else
    `<REELTRACE_DATA_DIR or the user's data directory>/snapshots`."""
    if os.environ.get("REELTRACE_EXPORT_DIR"):
        return Path(os.environ["REELTRACE_EXPORT_DIR"])
    data_dir = os.environ.get("REELTRACE_DATA_DIR")
    return (Path(data_dir) if data_dir else user_data_path("reeltrace", appauthor=False)) / "snapshots"


@dataclass(frozen=True)
class Overview:
    info: SnapshotInfo
    latency: Rows
    percentiles: Rows
    outcomes: Rows
    prompts: Rows
    spend: Rows
    guild: str | None
    guild_stats: GuildStats | None

    def guild_rows(self) -> list[dict[str, Any]]:
        """The chosen guild's weekly buckets, as table rows."""
        if self.guild_stats is None:
            return []
        return [
            {
                "week": str(b.bucket_start),
                "total": b.total,
                **b.by_status,
                "avg completed (s)": None
                if b.avg_completed_duration_ms is None
                else round(b.avg_completed_duration_ms / 1000, 1),
                "top prompt": b.top_prompts[0].prompt if b.top_prompts else "",
            }
            for b in self.guild_stats.buckets
        ]

    def summary(self) -> str:
        info = self.info
        return (
            f"Snapshot {info.version}, complete up to {info.watermark:%Y-%m-%d %H:%M:%S} UTC "
            f"({info.age_seconds() / 3600:.1f} h ago): {info.rows['video_requests']:,} requests, "
            f"{info.rows['request_stages']:,} stages, {info.rows['request_events']:,} events."
        )


def load_overview(snapshot_dir: Path, guild: str | None = None) -> Overview:
    """Everything the overview shows, from the latest snapshot; the guild defaults to the busiest."""
    with open_snapshot(snapshot_dir) as snap:
        busiest = snap.execute(
            "SELECT guild_id FROM video_requests WHERE guild_id IS NOT NULL"
            " GROUP BY guild_id ORDER BY count(*) DESC, guild_id LIMIT 1"
        ).fetchall()
        chosen = guild or (busiest[0][0] if busiest else None)
        return Overview(
            info=snap.info,
            latency=queries.latency_histogram(snap, bin_ms=10_000),
            percentiles=queries.global_latency(snap),
            outcomes=queries.outcomes_by_day(snap),
            prompts=queries.top_prompts(snap, top=10),
            spend=queries.cost_by(snap, "day"),
            guild=chosen,
            guild_stats=None if chosen is None else queries.guild_stats(snap, chosen, "week"),
        )


def figures(overview: Overview) -> dict[str, Figure]:
    """The charts by file stem (matplotlib is loaded only here)."""
    from analytics import charts

    return {
        "latency_distribution": charts.latency_figure(overview.latency, overview.percentiles),
        "outcomes_over_time": charts.outcomes_figure(overview.outcomes),
        "top_prompts": charts.prompts_figure(overview.prompts),
        "spend_per_day": charts.spend_figure(overview.spend),
    }


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: without the XML prolog and doctype


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>No guild has requests in this snapshot.</p>"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reeltrace analytics</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}}
figure{{margin:1.5em 0}} svg{{max-width:100%;height:auto}}
table{{border-collapse:collapse;font-size:.9em}} td,th{{border:1px solid #ccc;padding:.2em .5em}}</style>
</head><body>
<h1>reeltrace analytics</h1>
<p>{summary}</p>
{charts}
<h2>Guild {guild}, per week</h2>
{table}
</body></html>
"""


def render_html(overview: Overview) -> str:
    """The overview as one self-contained HTML page."""
    charts = "\n".join(
        f'<figure id="{name}">{_svg(figure)}</figure>' for name, figure in figures(overview).items()
    )
    return PAGE.format(
        summary=html.escape(overview.summary()),
        charts=charts,
        guild=html.escape(overview.guild or "-"),
        table=_table(overview.guild_rows()),
    )
