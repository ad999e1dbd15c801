"""grafana/dashboards: valid JSON, sane layout, provisioned datasources, checked queries."""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from tests.config.support import (
    DASHBOARDS_DIR,
    check_promql,
    dashboards,
    label_values_query,
    panels,
    promql_problems,
    promql_variable_values,
    provisioned_datasources,
    recording_rules,
    substitute,
    target_datasource,
    targets,
    variable_references,
    variables,
)

DASHBOARDS = dashboards()
IDS = [path.stem for path, _ in DASHBOARDS]
GRID_COLUMNS = 24

# The dashboards the stack promises, and panels each must have (by title).
REQUIRED = {
    "reeltrace-overview": [
        "Request rate",
        "Request latency P50 / P95 / P99",
        "Failure rate %",
        "Outcomes by status",
        "In flight by stage",
        "Queueing time P50 / P95",
        "SLO burn rate",
        "Spend per hour",
        "Spend burn rate",
    ],
    "reeltrace-stages": [
        "Stage duration P50",
        "Stage duration P95",
        "Stage duration P99",
        "Stage failure rate",
        "Stage retries / s",
        "Slowest stage (P95, time range)",
    ],
    "reeltrace-live": ["Active requests", "Recent failures"],
    "reeltrace-spend": ["Spend per guild", "Spend per day by guild", "Most expensive requests"],
    "reeltrace-request-lookup": ["Request", "Stages", "Events", "Trace"],
    "reeltrace-dependencies": [
        "Circuit-breaker states",
        "External calls / s by outcome",
        "External call latency P95",
    ],
}

by_file = pytest.mark.parametrize(("path", "dashboard"), DASHBOARDS, ids=IDS)


def _datasource_refs(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    refs = []
    for panel in panels(dashboard):
        if "datasource" in panel:
            refs.append(panel["datasource"])
        refs += [target_datasource(panel, target) for target in panel.get("targets", [])]
    refs += [var["datasource"] for var in variables(dashboard) if "datasource" in var]
    return refs


def _promql_targets(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (panel, target)
        for panel, target in targets(dashboard)
        if target_datasource(panel, target).get("type") == "prometheus"
    ]


def test_the_promised_dashboards_exist() -> None:
    """Overview, stages, live requests, request lookup and dependencies, with their panels."""
    found = {dashboard["uid"]: dashboard for _, dashboard in DASHBOARDS}
    assert REQUIRED.keys() <= found.keys()
    for uid, titles in REQUIRED.items():
        present = {panel["title"] for panel in panels(found[uid])}
        assert sorted(set(titles) - present) == [], uid


def test_uids_and_titles_are_unique() -> None:
    """No two dashboards share a uid or a title."""
    uids = [d["uid"] for _, d in DASHBOARDS]
    titles = [d["title"] for _, d in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)


@by_file
def test_dashboard_has_identity(path: Path, dashboard: dict[str, Any]) -> None:
    """uid (at most 40 characters), title, a recent schemaVersion and the reeltrace tag."""
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"]
    assert 39 <= dashboard["schemaVersion"] <= 42
    assert "reeltrace" in dashboard["tags"]
    assert "id" not in dashboard or dashboard["id"] is None


@by_file
def test_panel_ids_are_unique(path: Path, dashboard: dict[str, Any]) -> None:
    """Panel ids are unique within a dashboard."""
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(set(ids)) == len(ids)


@by_file
def test_grid_positions_fit_and_do_not_overlap(path: Path, dashboard: dict[str, Any]) -> None:
    """Every panel lies inside the 24-column grid and no two panels overlap."""
    boxes = []
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) for k in ("x", "y", "w", "h")), panel["title"]
        assert min(pos["x"], pos["y"]) >= 0, panel["title"]
        assert min(pos["w"], pos["h"]) >= 1, panel["title"]
        assert pos["x"] + pos["w"] <= GRID_COLUMNS, panel["title"]
        boxes.append((panel["title"], pos))
    for (a, p), (b, q) in combinations(boxes, 2):
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, f"{a!r} overlaps {b!r}"


@by_file
def test_only_provisioned_datasources(path: Path, dashboard: dict[str, Any]) -> None:
    """Every datasource a panel, query or variable names is provisioned, with the same type."""
    provisioned = provisioned_datasources()
    refs = _datasource_refs(dashboard)
    assert refs
    for ref in refs:
        assert ref.get("uid") in provisioned, ref
        assert ref.get("type") == provisioned[ref["uid"]]["type"], ref


@by_file
def test_every_panel_has_a_query(path: Path, dashboard: dict[str, Any]) -> None:
    """No panel is left empty: each has at least one query with an expression or SQL."""
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), panel["title"]
        for target in panel["targets"]:
            assert target.get("expr") or target.get("rawSql") or target.get("query"), panel["title"]


@by_file
def test_every_variable_used_is_defined(path: Path, dashboard: dict[str, Any]) -> None:
    """Queries and links use only the dashboard's variables and Grafana's built-ins."""
    defined = {var["name"] for var in variables(dashboard)}
    texts = [str(target) for _, target in targets(dashboard)]
    texts += [str(var.get("query", "")) for var in variables(dashboard)]
    texts += [str(panel.get("fieldConfig", {})) for panel in panels(dashboard)]
    texts += [str(link.get("url", "")) for link in dashboard.get("links", [])]
    for text in texts:
        for name, _fmt in variable_references(text):
            assert name.startswith("__") or name in defined, name


@by_file
def test_links_point_at_existing_dashboards_and_variables(path: Path, dashboard: dict[str, Any]) -> None:
    """A `/d/<uid>` link names a dashboard that exists, and `var-` parameters it defines."""
    found = {d["uid"]: d for _, d in DASHBOARDS}
    text = str([panel.get("fieldConfig", {}) for panel in panels(dashboard)] + dashboard.get("links", []))
    for uid, query in re.findall(r"/d/([a-z0-9-]+)/[a-z0-9-]*\?([^'\"]*)", text):
        assert uid in found, uid
        target_vars = {var["name"] for var in variables(found[uid])}
        for name in re.findall(r"var-(\w+)=", query):
            assert name in target_vars, (uid, name)


@by_file
def test_trace_links_use_the_jaeger_url_variable(path: Path, dashboard: dict[str, Any]) -> None:
    """Links to traces go to ${jaeger_url}/trace/<trace id>, never a hard-coded host."""
    text = str([panel.get("fieldConfig", {}) for panel in panels(dashboard)] + dashboard.get("links", []))
    for url in re.findall(r"'url': '([^']*)'", text):
        if "/trace/" in url:
            assert url.startswith("${jaeger_url}/trace/"), url
    assert "16686" not in text


@by_file
def test_latency_panels_show_exemplars(path: Path, dashboard: dict[str, Any]) -> None:
    """A time series of a histogram quantile asks for exemplars (they carry the trace id)."""
    for panel, target in _promql_targets(dashboard):
        if panel["type"] == "timeseries" and "histogram_quantile" in target["expr"]:
            assert target.get("exemplar") is True, panel["title"]


@by_file
def test_promql_passes_promtool(path: Path, dashboard: dict[str, Any], tmp_path: Path) -> None:
    """Every PromQL expression, with Grafana's variables put in, passes `promtool check rules`."""
    values = promql_variable_values(dashboard)
    exprs = {
        f"panel_{panel['id']}_{target['refId']}": substitute(target["expr"], values)
        for panel, target in _promql_targets(dashboard)
    }
    for var in variables(dashboard):
        parsed = label_values_query(str(var.get("definition", ""))) if var["type"] == "query" else None
        if parsed:
            exprs[f"variable_{var['name']}"] = substitute(parsed[0], values)
    # The lookup and the per-guild spend read PostgreSQL only.
    assert exprs or dashboard["uid"] in {"reeltrace-request-lookup", "reeltrace-spend"}
    if not exprs:
        return
    assert not [e for e in exprs.values() if "$" in e]
    result = check_promql(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@by_file
def test_promql_reads_declared_metrics_and_labels(path: Path, dashboard: dict[str, Any]) -> None:
    """Every metric and label a panel or variable queries exists in telemetry.metrics or the rules."""
    recorded = recording_rules()
    problems = {}
    for panel, target in _promql_targets(dashboard):
        if found := promql_problems(target["expr"], recorded):
            problems[panel["title"]] = found
    for var in variables(dashboard):
        parsed = label_values_query(str(var.get("definition", ""))) if var["type"] == "query" else None
        if parsed and (found := promql_problems(f"sum by ({parsed[1]}) ({parsed[0]})", recorded)):
            problems[var["name"]] = found
    assert problems == {}


def test_no_stray_files_in_the_dashboards_directory() -> None:
    """The provider loads every file there, so only dashboard JSON belongs in it."""
    assert {p.suffix for p in DASHBOARDS_DIR.iterdir()} == {".json"}
