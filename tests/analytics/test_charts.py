"""The overview's charts show every pipeline and the failures, whatever their share."""

from __future__ import annotations

from analytics import charts
from analytics.report import load_overview
from tests.analytics.conftest import Exported


def test_each_pipeline_has_its_own_latency_panel(exported: Exported) -> None:
    """The lesson pipeline's distribution is drawn on a panel of its own, so veo's line cannot cover it."""
    overview = load_overview(exported.root)
    figure = charts.latency_figure(overview.latency, overview.percentiles)
    panels = {ax.containers[0].get_label(): ax for ax in figure.axes}
    assert set(panels) == {"pipeline lesson", "pipeline veo"}
    lesson = panels["pipeline lesson"]
    counts = [bar.get_height() for bar in lesson.containers[0]]
    expected = sum(r[2] for r in overview.latency.rows if r[0] == "lesson")
    assert sum(counts) == expected > 0
    assert lesson.get_ylim()[1] < 2 * max(counts)  # on its own scale, not veo's


def test_outcomes_over_time_show_failures_on_their_own_scale(exported: Exported) -> None:
    """Failed and timed-out requests per day have a panel scaled to them, holding every one of them."""
    overview = load_overview(exported.root)
    figure = charts.outcomes_figure(overview.outcomes)
    totals, failures = figure.axes[0], figure.axes[1]
    failed = sum(r[2] for r in overview.outcomes.rows if r[1] in ("failed", "timeout"))
    assert failed > 0
    drawn = sum(bar.get_height() for bar in failures.patches)
    assert drawn == failed
    assert failures.get_ylim()[1] < totals.get_ylim()[1] / 2
