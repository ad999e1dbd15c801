"""reeltrace analytics overview: latency distributions, outcomes over time, top prompts, spend.

A marimo notebook over the latest Parquet snapshot. Open it with `reeltrace notebook`
(or write it as a page with `reeltrace notebook --html FILE`); `marimo edit` it to
change it. The charts are `analytics/charts.py`, the data `analytics/report.py`.

REELTRACE_EXPORT_DIR     the snapshot directory (default <data dir>/snapshots, as `reeltrace export`)
REELTRACE_NOTEBOOK_OUT   if set, each figure is also saved there as a PNG
REELTRACE_NOTEBOOK_GUILD the guild whose weekly stats are shown (default: the busiest)
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import os
    from pathlib import Path

    import marimo as mo

    from analytics.report import default_snapshot_dir, figures, load_overview

    return Path, default_snapshot_dir, figures, load_overview, mo, os


@app.cell
def _(Path, default_snapshot_dir, load_overview, os):
    snapshot_dir = default_snapshot_dir()
    out_dir = Path(os.environ["REELTRACE_NOTEBOOK_OUT"]) if os.environ.get("REELTRACE_NOTEBOOK_OUT") else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    overview = load_overview(snapshot_dir, os.environ.get("REELTRACE_NOTEBOOK_GUILD"))
    return out_dir, overview


@app.cell
def _(mo, overview):
    mo.md(f"# reeltrace analytics\n\n{overview.summary()}")
    return


@app.cell
def _(figures, out_dir, overview):
    charts = figures(overview)
    if out_dir is not None:
        for name, figure in charts.items():
            figure.savefig(out_dir / f"{name}.png", dpi=100)
    return (charts,)


@app.cell
def _(charts):
    charts["latency_distribution"]
    return


@app.cell
def _(charts):
    charts["outcomes_over_time"]
    return


@app.cell
def _(charts):
    charts["top_prompts"]
    return


@app.cell
def _(mo, overview):
    if overview.guild_stats is None:
        _view = mo.md("No guild has requests in this snapshot.")
    else:
        _view = mo.vstack(
            [mo.md(f"## Guild {overview.guild}, per week"), mo.ui.table(overview.guild_rows(), selection=None)]
        )
    _view
    return


@app.cell
def _(charts):
    charts["spend_per_day"]
    return


if __name__ == "__main__":
    app.run()
