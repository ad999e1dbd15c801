"""reeltrace analytics overview: latency distributions, outcomes over time, top prompts, spend.

A marimo notebook over the latest Parquet snapshot. Open it with
`marimo edit analytics/notebooks/overview.py`, or run it as a script:
`python analytics/notebooks/overview.py`.

REELTRACE_EXPORT_DIR     the snapshot directory (default .reeltrace/snapshots)
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
    import matplotlib

    matplotlib.use("Agg")  # figures are shown by marimo or saved; no window is opened
    import matplotlib.pyplot as plt

    from analytics import queries
    from analytics.reader import open_snapshot

    return Path, mo, open_snapshot, os, plt, queries


@app.cell
def _(Path, os):
    snapshot_dir = Path(os.environ.get("REELTRACE_EXPORT_DIR") or ".reeltrace/snapshots")
    out_dir = Path(os.environ["REELTRACE_NOTEBOOK_OUT"]) if os.environ.get("REELTRACE_NOTEBOOK_OUT") else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    chosen_guild = os.environ.get("REELTRACE_NOTEBOOK_GUILD")
    return chosen_guild, out_dir, snapshot_dir


@app.cell
def _(chosen_guild, open_snapshot, queries, snapshot_dir):
    with open_snapshot(snapshot_dir) as snap:
        info = snap.info
        latency = queries.latency_histogram(snap, bin_ms=10_000)
        percentiles = queries.global_latency(snap)
        outcomes = queries.outcomes_by_day(snap)
        prompts = queries.top_prompts(snap, top=10)
        busiest = snap.execute(
            "SELECT guild_id FROM video_requests WHERE guild_id IS NOT NULL"
            " GROUP BY guild_id ORDER BY count(*) DESC, guild_id LIMIT 1"
        ).fetchall()
        guild = chosen_guild or (busiest[0][0] if busiest else None)
        guild_stats = None if guild is None else queries.guild_stats(snap, guild, "week")
    return guild, guild_stats, info, latency, outcomes, percentiles, prompts


@app.cell
def _(info, mo):
    mo.md(
        f"""
        # reeltrace analytics

        Snapshot **{info.version}**, complete up to **{info.watermark:%Y-%m-%d %H:%M:%S} UTC**
        ({info.age_seconds() / 3600:.1f} h ago): {info.rows["video_requests"]:,} requests,
        {info.rows["request_stages"]:,} stages, {info.rows["request_events"]:,} events.
        """
    )
    return


@app.cell
def _(latency, out_dir, percentiles, plt):
    fig_latency, ax_latency = plt.subplots(figsize=(9, 4))
    for pipeline in sorted(set(latency.column("pipeline"))):
        rows = [r for r in latency.rows if r[0] == pipeline]
        ax_latency.step(
            [r[1] / 1000 for r in rows], [r[2] for r in rows], where="post", label=f"pipeline {pipeline}"
        )
    overall = next((r for r in percentiles.dicts() if r["dimension"] == "all"), None)
    if overall is not None and overall["p50_ms"] is not None:
        for name, style in (("p50_ms", ":"), ("p95_ms", "--"), ("p99_ms", "-.")):
            ax_latency.axvline(
                overall[name] / 1000, color="grey", linestyle=style, label=f"{name[:3].upper()} {overall[name] / 1000:.0f} s"
            )
    ax_latency.set_xlabel("completed duration (s)")
    ax_latency.set_ylabel("requests per 10 s bin")
    ax_latency.set_title("Latency distribution of completed requests")
    ax_latency.legend()
    fig_latency.tight_layout()
    if out_dir is not None:
        fig_latency.savefig(out_dir / "latency_distribution.png", dpi=100)
    fig_latency
    return


@app.cell
def _(out_dir, outcomes, plt):
    statuses = ["completed", "failed", "timeout", "generating", "pending"]
    days = sorted(set(outcomes.column("day")))
    counts = {(r[0], r[1]): r[2] for r in outcomes.rows}
    fig_outcomes, ax_outcomes = plt.subplots(figsize=(9, 4))
    bottom = [0] * len(days)
    for status in statuses:
        heights = [counts.get((d, status), 0) for d in days]
        ax_outcomes.bar(days, heights, bottom=bottom, width=1.0, label=status)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax_outcomes.set_ylabel("requests per day")
    ax_outcomes.set_title("Outcomes over time (by day of creation, UTC)")
    ax_outcomes.legend(ncols=len(statuses), fontsize="small", loc="upper left")
    fig_outcomes.autofmt_xdate()
    fig_outcomes.tight_layout()
    if out_dir is not None:
        fig_outcomes.savefig(out_dir / "outcomes_over_time.png", dpi=100)
    fig_outcomes
    return


@app.cell
def _(out_dir, plt, prompts):
    fig_prompts, ax_prompts = plt.subplots(figsize=(9, 4))
    labels = [p if len(p) <= 40 else p[:39] + "…" for p in prompts.column("prompt")][::-1]
    ax_prompts.barh(labels, prompts.column("requests")[::-1])
    ax_prompts.set_xlabel("requests")
    ax_prompts.set_title("Top prompts (lower-cased, whitespace collapsed)")
    fig_prompts.tight_layout()
    if out_dir is not None:
        fig_prompts.savefig(out_dir / "top_prompts.png", dpi=100)
    fig_prompts
    return


@app.cell
def _(guild, guild_stats, mo):
    if guild_stats is None:
        _view = mo.md("No guild has requests in this snapshot.")
    else:
        _view = mo.vstack(
            [
                mo.md(f"## Guild {guild}, per week"),
                mo.ui.table(
                    [
                        {
                            "week": str(b.bucket_start),
                            "total": b.total,
                            **b.by_status,
                            "avg completed (s)": None
                            if b.avg_completed_duration_ms is None
                            else round(b.avg_completed_duration_ms / 1000, 1),
                            "top prompt": b.top_prompts[0].prompt if b.top_prompts else "",
                        }
                        for b in guild_stats.buckets
                    ],
                    selection=None,
                ),
            ]
        )
    _view
    return


@app.cell
def _(open_snapshot, out_dir, plt, queries, snapshot_dir):
    # Spend per day: what requests cost (every billed attempt; see `stats cost`).
    with open_snapshot(snapshot_dir) as _snap:
        spend = queries.cost_by(_snap, "day")
    fig_spend, ax_spend = plt.subplots(figsize=(9, 4))
    ax_spend.bar(spend.column("day"), [float(c) for c in spend.column("cost_usd")], width=1.0)
    ax_spend.set_ylabel("USD per day")
    ax_spend.set_title(f"Spend per day (by day of creation, UTC): {sum(spend.column('cost_usd')):,.2f} USD in all")
    fig_spend.autofmt_xdate()
    fig_spend.tight_layout()
    if out_dir is not None:
        fig_spend.savefig(out_dir / "spend_per_day.png", dpi=100)
    fig_spend
    return


if __name__ == "__main__":
    app.run()
