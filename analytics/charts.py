"""The overview's charts, as matplotlib figures: latency, outcomes over time, top prompts, spend.

Shared by the marimo notebook and the HTML page (`reeltrace notebook --html`), so both
draw the same thing. Figures are built without pyplot: no global state, no window,
no backend to choose.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from analytics.queries import Rows

# The latency histogram's bin (`latency_histogram(snap, bin_ms=10_000)`).
BIN_SECONDS = 10
PERCENTILES = (("p50_ms", ":"), ("p95_ms", "--"), ("p99_ms", "-."))
# Stacked from the bottom; the failures panel shows the ones that did not complete.
STATUS_COLORS = {
    "completed": "tab:green",
    "failed": "tab:red",
    "timeout": "tab:orange",
    "generating": "tab:blue",
    "pending": "tab:gray",
}
FAILED = ("failed", "timeout")


def latency_figure(latency: Rows, percentiles: Rows) -> Figure:
    """One panel per pipeline, each on its own scale, with that pipeline's P50/P95/P99.

    On one axis the busiest pipeline's line would cover the others (a `lesson` count
    of a few per bin lies flat under `veo`'s); apart, each one is read.
    """
    pipelines = sorted(set(latency.column("pipeline")))
    fig = Figure(figsize=(9, 2.4 * max(len(pipelines), 1) + 0.6), layout="constrained")
    axes = fig.subplots(max(len(pipelines), 1), 1, sharex=True, squeeze=False)[:, 0]
    by_pipeline = {r["value"]: r for r in percentiles.dicts() if r["dimension"] == "pipeline"}
    for ax, pipeline in zip(axes, pipelines, strict=False):
        rows = [r for r in latency.rows if r[0] == pipeline]
        # Bars of the bins themselves: a pipeline with one bin still shows it.
        ax.bar([r[1] / 1000 for r in rows], [r[2] for r in rows], width=BIN_SECONDS, align="edge",
               label=f"pipeline {pipeline}")  # fmt: skip
        marks = by_pipeline.get(pipeline)
        for name, style in PERCENTILES if marks is not None and marks["p50_ms"] is not None else ():
            seconds = marks[name] / 1000  # type: ignore[index]
            ax.axvline(seconds, color="grey", linestyle=style, label=f"{name[:3].upper()} {seconds:.0f} s")
        ax.set_ylabel("requests / 10 s")
        ax.legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel("completed duration (s)")
    fig.suptitle("Latency distribution of completed requests, per pipeline")
    return fig


def outcomes_figure(outcomes: Rows) -> Figure:
    """Requests per day by status, and below, on its own scale, the failed and timed-out ones
    with the day's failure rate: a few failures among thousands stay visible."""
    days = sorted(set(outcomes.column("day")))
    counts = {(r[0], r[1]): r[2] for r in outcomes.rows}
    fig = Figure(figsize=(9, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    base = [0] * len(days)
    for status, color in STATUS_COLORS.items():
        heights = [counts.get((d, status), 0) for d in days]
        top.bar(days, heights, bottom=base, width=0.8, align="edge", color=color, label=status)
        base = [b + h for b, h in zip(base, heights, strict=True)]
    top.set_ylabel("requests per day")
    top.set_title("Outcomes over time (by day of creation, UTC)")
    top.legend(ncols=len(STATUS_COLORS), fontsize="small", loc="upper left")
    base = [0] * len(days)
    for status in FAILED:
        heights = [counts.get((d, status), 0) for d in days]
        bottom.bar(
            days, heights, bottom=base, width=0.8, align="edge", color=STATUS_COLORS[status], label=status
        )
        base = [b + h for b, h in zip(base, heights, strict=True)]
    bottom.set_ylabel("failed + timeout per day")
    bottom.set_ylim(0, max(1, max(base, default=0) * 1.15))  # none at all is a flat 0, not noise
    if days:  # a day's bar, not an hour's: a margin of a day, dates without hours
        top.set_xlim(days[0] - timedelta(days=1), days[-1] + timedelta(days=1))
        # matplotlib.dates leaves these two constructors unannotated.
        locator = AutoDateLocator(minticks=3, maxticks=12)  # type: ignore[no-untyped-call]
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    rate = bottom.twinx()
    ended = [sum(counts.get((d, s), 0) for s in ("completed", *FAILED)) for d in days]
    rate.plot(days, [100 * f / e if e else 0 for f, e in zip(base, ended, strict=True)], color="black",
              linewidth=1, label="failure rate")  # fmt: skip
    rate.set_ylabel("failure rate (%)")
    rate.set_ylim(bottom=0)
    bottom.legend(loc="upper left", fontsize="small")
    return fig


def prompts_figure(prompts: Rows) -> Figure:
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax = fig.subplots()
    labels = [p if len(p) <= 40 else p[:39] + "…" for p in prompts.column("prompt")][::-1]
    ax.barh(labels, prompts.column("requests")[::-1])
    ax.set_xlabel("requests")
    ax.set_title("Top prompts (lower-cased, whitespace collapsed)")
    return fig


def spend_figure(spend: Rows) -> Figure:
    """What requests cost per day (every billed attempt; the same definition as `stats cost`)."""
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax = fig.subplots()
    days = spend.column("day")
    costs = [float(c) for c in spend.column("cost_usd")]
    ax.bar(days, costs, width=0.8, align="edge", color="tab:purple")
    ax.set_ylabel("USD per day")
    ax.set_title(f"Spend per day (by day of creation, UTC): {sum(costs):,.2f} USD in all")
    if days:
        locator = AutoDateLocator(minticks=3, maxticks=12)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    return fig
