"""End to end: `reeltrace serve` on the simulated backend, scraped by a real Prometheus.

One scenario serves the module: serve starts with short generations, a few failures
and some quota errors (so stages retry); Prometheus (the Debian binary, exemplar
storage on) scrapes it every second with the project's own config and rules; 200
requests are driven through the API until every one is terminal. Every check reads
Prometheus *at the moment that phase ended* (`Scenario.ended`), so the checks hold
whatever order they run in, the alert test's second phase included.

Scenario choices, and why:
- Failure rate 3 %: under the availability page thresholds (14.4x and 6x a 1 % budget,
  i.e. 14.4 % and 6 %), above the ticket's 1x (1 %). So the page alert is silent at
  first while the ticket fires, and raising the rate to 80 % (second phase) must make
  the page fire.
- A fixed simulation seed and fixed request ids: the backend draws each outcome from
  (seed, request id, attempt), so the same requests fail on every run.

The alert asserted is the real ReeltraceAvailabilityBudgetBurn rule, not a test copy:
it has no `for:`, and its recording rules (rates over 5 m ... 30 d) compute over
whatever samples exist, so with 1 s evaluation they hold the test's data within
seconds. While every sample is younger than 5 minutes all windows see the same
requests, and each ratio is the failure share of every finished request.
"""

from __future__ import annotations

import math
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from telemetry.metrics import DURATION_BUCKETS
from tests.config.support import (
    PROMETHEUS_CONFIG,
    alert_rules,
    dashboards,
    label_values_query,
    promql_variable_values,
    recording_rules,
    substitute,
    target_datasource,
    targets,
    variables,
)
from tests.conftest import require_tool
from tests.e2e.serve import (
    TERMINAL,
    ServeProcess,
    serve_env,
    start_serve,
    start_serve_on_free_port,
    submit_all,
)
from tests.support.pg import PgCluster
from tests.support.prometheus import (
    PrometheusServer,
    finite_values,
    retargeted_config,
    running_prometheus,
)

pytestmark = pytest.mark.slow

SCRAPE_SECONDS = 1
REQUESTS = 200
RAISED_REQUESTS = 50
PHASE_ONE_FAILURE_RATE = 0.03
RAISED_FAILURE_RATE = 0.8
# Burn-rate factors of ReeltraceAvailabilityBudgetBurn (prometheus/rules/slo-availability.yml);
# the objective itself is read from Prometheus (slo:reeltrace_availability:objective).
PAGE_BURN_RATES = (14.4, 6.0)
TICKET_BURN_RATE = 1.0
TRACE_ID = re.compile(r"[0-9a-f]{32}")
HISTOGRAMS = (
    "reeltrace_request_duration_seconds_bucket",
    "reeltrace_request_queue_seconds_bucket",
    "reeltrace_stage_duration_seconds_bucket",
    "reeltrace_external_call_duration_seconds_bucket",
)

# Grafana's $__rate_interval is max($__interval + scrape interval, 4 x scrape interval);
# with a range query step of 2 s and 1 s scrapes that is 4 s.
STEP_SECONDS = 2
RATE_INTERVAL = f"{max(STEP_SECONDS + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)}s"

# Panels that legitimately show nothing in this scenario: (dashboard uid, panel title)
# -> (why, a PromQL expression that must read 0 over the scenario to prove the why).
# A listed panel that does return data fails the test, so the list cannot go stale.
NO_DATA = {
    ("reeltrace-dependencies", "Tracking writes journaled / s"): (
        "reeltrace_tracking_write_failures_total{operation} only has series once a tracking"
        " write failed; PostgreSQL stays up throughout, so nothing is journaled",
        "max(max_over_time(reeltrace_tracking_journal_pending[{window}]))",
    ),
}


def _seconds(value: float) -> str:
    return f"{math.ceil(value)}s"


@dataclass
class Scenario:
    prometheus: PrometheusServer
    serve: ServeProcess
    env: dict[str, str]
    database_url: str
    workdir: Path
    ids: list[uuid.UUID]
    started: float  # Unix time, just before the first request
    ended: float  # Unix time at which every check reads Prometheus
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def window(self) -> str:
        """A range selector duration covering the whole scenario."""
        return _seconds(self.ended - self.started + 2 * SCRAPE_SECONDS)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return list(conn.execute(sql.encode(), params).fetchall())


def _request_ids(phase: str, count: int) -> list[uuid.UUID]:
    return [uuid.uuid5(uuid.NAMESPACE_URL, f"reeltrace-e2e:{phase}:{i}") for i in range(count)]


def _settings(database_url: str, data_dir: Path, failure_rate: float) -> dict[str, str]:
    # OTEL_* stay unset: spans are recorded without export, so trace ids reach the rows
    # and the exemplars.
    return {
        "DATABASE_URL": database_url,
        "REELTRACE_DATA_DIR": str(data_dir),
        "REELTRACE_API_KEYS_REQUIRED": "false",
        "REELTRACE_RATE_LIMIT": "100000/minute",
        "REELTRACE_SIM_LATENCY_SECONDS": "0.6",
        "REELTRACE_SIM_JITTER_SECONDS": "0.3",
        "REELTRACE_SIM_FAILURE_RATE": str(failure_rate),
        "REELTRACE_SIM_QUOTA_ERROR_RATE": "0.05",
        "REELTRACE_SIM_SEED": "20",
        # Every poll of the ~200 generations in flight is a traced, measured call: 0.3 s
        # keeps the one process from spending the test polling.
        "REELTRACE_POLL_INTERVAL_SECONDS": "0.3",
        "REELTRACE_RETRY_BASE_SECONDS": "0.05",
        "REELTRACE_WORKER_POLL_SECONDS": "0.05",
        "REELTRACE_LOG_LEVEL": "warning",
    }


def _statuses(database_url: str, ids: list[uuid.UUID]) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            b"SELECT status::text, count(*) FROM video_requests WHERE id = ANY(%s) GROUP BY 1", (ids,)
        ).fetchall()
    return {str(status): int(n) for status, n in rows}


def _wait_terminal(scenario: Scenario, ids: list[uuid.UUID], within: float) -> dict[str, int]:
    deadline = time.monotonic() + within
    while True:
        found = _statuses(scenario.database_url, ids)
        if sum(n for s, n in found.items() if s in TERMINAL) == len(ids):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(ids)} requests not all terminal after {within} s: {found}\n{scenario.serve.tail()}"
            )
        if scenario.serve.process.poll() is not None:
            raise AssertionError(f"reeltrace serve exited:\n{scenario.serve.tail()}")
        time.sleep(0.2)


def _wait_scraped(prometheus: PrometheusServer, finished: int, within: float = 30.0) -> None:
    """Wait until Prometheus has scraped a process whose counter saw `finished` requests end,
    and every rule group has evaluated since, so recorded series and alerts include them."""

    def seen_at() -> float | None:
        result = prometheus.query("sum(reeltrace_requests_finished_total)")
        # The moment the query answers, not the sample's timestamp (its scrape's start):
        # a rule group evaluated between the two may not have had the sample yet.
        return time.time() if result and float(result[0]["value"][1]) == finished else None

    when = prometheus.wait_until(f"Prometheus sees {finished} finished requests", seen_at, within)
    prometheus.wait_for_rules_after(when, within)


@pytest.fixture(scope="module")
def scenario(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """Serve and Prometheus running, 200 requests terminal and scraped."""
    binary = require_tool("prometheus", shutil.which("prometheus"))
    workdir = tmp_path_factory.mktemp("e2e")
    name = pg_cluster.new_database()
    database_url = pg_cluster.url(name)
    env = serve_env(_settings(database_url, workdir / "data", PHASE_ONE_FAILURE_RATE))
    with ExitStack() as stack:
        stack.callback(pg_cluster.drop_database, name)
        serve = start_serve_on_free_port(env, workdir / "serve.log")
        holder: list[Scenario] = []
        # The alert test restarts serve: stop whichever process is current.
        stack.callback(lambda: (holder[0].serve if holder else serve).stop())
        config = retargeted_config(
            PROMETHEUS_CONFIG,
            # serve runs its worker in-process; no separate worker, no self-scrape.
            {"reeltrace-api": f"127.0.0.1:{serve.port}", "reeltrace-worker": None, "prometheus": None},
            interval=f"{SCRAPE_SECONDS}s",
        )
        prometheus = stack.enter_context(running_prometheus(binary, config, workdir / "prometheus"))
        prometheus.wait_for_scrape("reeltrace-api")
        ids = _request_ids("one", REQUESTS)
        current = Scenario(prometheus, serve, env, database_url, workdir, ids, time.time(), 0.0)
        holder.append(current)
        submit_all(serve.url, ids)
        current.statuses = _wait_terminal(current, ids, within=180)
        _wait_scraped(prometheus, REQUESTS)
        current.ended = time.time()
        yield current


# --------------------------------------------------------------------------- rules


def test_every_rule_is_loaded_and_evaluates_cleanly(scenario: Scenario) -> None:
    """Prometheus loaded every recording and alerting rule of prometheus/rules, and each one's
    last evaluation against the scenario's series succeeded."""
    groups = scenario.prometheus.api("rules")["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert sorted(r["name"] for r in loaded if r["type"] == "recording") == sorted(recording_rules())
    assert sorted(r["name"] for r in loaded if r["type"] == "alerting") == sorted(
        r["alert"] for r in alert_rules()
    )
    failing = {r["name"]: r.get("lastError") for r in loaded if r["health"] != "ok"}
    assert failing == {}


# --------------------------------------------------------------------------- dashboards


def _panel_queries() -> list[Any]:
    params = []
    for _, dashboard in dashboards():
        for panel, target in targets(dashboard):
            if target_datasource(panel, target).get("type") == "prometheus":
                params.append(
                    pytest.param(
                        dashboard,
                        panel,
                        target,
                        id=f"{dashboard['uid']}/{panel['title']}/{target['refId']}",
                    )
                )
    return params


def _variable_queries() -> list[Any]:
    params = []
    for _, dashboard in dashboards():
        for var in variables(dashboard):
            parsed = label_values_query(str(var.get("definition", ""))) if var["type"] == "query" else None
            if parsed and var["datasource"]["type"] == "prometheus":
                params.append(pytest.param(dashboard, *parsed, id=f"{dashboard['uid']}/{var['name']}"))
    return params


def _values(dashboard: dict[str, Any], scenario: Scenario) -> dict[str, str]:
    """The dashboard's variables as Grafana fills them in: "All", a time range of the
    whole scenario and the rate interval of a 1 s scrape."""
    return promql_variable_values(dashboard) | {
        "__rate_interval": RATE_INTERVAL,
        "__interval": f"{STEP_SECONDS}s",
        "__range": scenario.window,
    }


def _run(scenario: Scenario, target: dict[str, Any], expr: str) -> list[dict[str, Any]]:
    """The query the way the panel sends it: instant at the end, or a range over the scenario."""
    if target.get("instant") and not target.get("range"):
        return scenario.prometheus.query(expr, at=scenario.ended)
    return scenario.prometheus.query_range(expr, scenario.started, scenario.ended, f"{STEP_SECONDS}s")


@pytest.mark.parametrize(("dashboard", "panel", "target"), _panel_queries())
def test_every_dashboard_query_returns_data(
    scenario: Scenario, dashboard: dict[str, Any], panel: dict[str, Any], target: dict[str, Any]
) -> None:
    """Each Prometheus query of each panel returns at least one finite value for the scenario
    (or, for a panel listed in NO_DATA, returns nothing and its stated reason holds)."""
    expr = substitute(target["expr"], _values(dashboard, scenario))
    result = _run(scenario, target, expr)
    exempt = NO_DATA.get((dashboard["uid"], panel["title"]))
    if exempt is None:
        assert finite_values(result), f"no data for {expr}: {result}"
        return
    reason, proof = exempt
    assert result == [], f"{panel['title']} returns data now, drop it from NO_DATA: {result}"
    assert scenario.prometheus.scalar(proof.replace("{window}", scenario.window), at=scenario.ended) == 0, (
        reason
    )


@pytest.mark.parametrize(("dashboard", "selector", "label"), _variable_queries())
def test_every_dashboard_variable_lists_values(
    scenario: Scenario, dashboard: dict[str, Any], selector: str, label: str
) -> None:
    """Each `label_values` variable of a dashboard offers at least one value."""
    match = substitute(selector, _values(dashboard, scenario))
    found = scenario.prometheus.api(
        f"label/{label}/values",
        **{"match[]": match, "start": f"{scenario.started:.3f}", "end": f"{scenario.ended:.3f}"},
    )
    assert found, f"label_values({match}, {label}) is empty"


# --------------------------------------------------------------------------- latency


def _bucket(seconds: float) -> float:
    """The upper bound of the histogram bucket holding `seconds`."""
    return next((b for b in DURATION_BUCKETS if seconds <= b), math.inf)


def test_duration_histogram_counts_every_finished_request_in_its_bucket(scenario: Scenario) -> None:
    """Per status, each cumulative bucket Prometheus scraped equals the number of finished rows
    whose duration_ms is within that bound (serve started with the scenario, so the counters
    are exact totals)."""
    rows = scenario.rows(
        "SELECT status::text, duration_ms FROM video_requests WHERE id = ANY(%s)", scenario.ids
    )
    result = scenario.prometheus.query(
        "sum by (status, le) (reeltrace_request_duration_seconds_bucket)", at=scenario.ended
    )
    scraped = {(s["metric"]["status"], float(s["metric"]["le"])): float(s["value"][1]) for s in result}
    statuses = {s for s, _ in rows} | {s for s, _ in scraped}
    expected = {
        (status, bound): float(sum(1 for s, ms in rows if s == status and ms / 1000 <= bound))
        for status in statuses
        for bound in (*DURATION_BUCKETS, math.inf)
    }
    assert scraped == expected


def test_p95_from_prometheus_matches_postgresql_within_a_bucket(scenario: Scenario) -> None:
    """histogram_quantile's P95 of completed requests lies in the bucket of PostgreSQL's P95.

    histogram_quantile ranks at 0.95 x N, so it lands in the bucket of the observation at
    rank ceil(0.95 N), which is percentile_disc(0.95); percentile_cont(0.95) interpolates
    between that observation and a neighbour, so its bucket is that one or the next.
    """
    ((cont_ms, disc_ms, completed),) = scenario.rows(
        "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms),"
        " percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms), count(*)"
        " FROM video_requests WHERE id = ANY(%s) AND status = 'completed'",
        scenario.ids,
    )
    assert completed > REQUESTS / 2
    # Over the whole scenario: an increase() would miss what a series counted before its
    # first scrape, the raw cumulative buckets of a process started with it do not.
    p95 = scenario.prometheus.scalar(
        'histogram_quantile(0.95, sum by (le) (reeltrace_request_duration_seconds_bucket{status="completed"}))',
        at=scenario.ended,
    )
    bounds = [0.0, *DURATION_BUCKETS, math.inf]
    upper = _bucket(disc_ms / 1000)
    lower = bounds[bounds.index(upper) - 1]
    detail = f"Prometheus {p95:.3f} s, PostgreSQL cont {cont_ms / 1000:.3f} s / disc {disc_ms / 1000:.3f} s"
    assert lower < p95 <= upper, detail
    assert abs(bounds.index(_bucket(cont_ms / 1000)) - bounds.index(upper)) <= 1, detail


def test_failure_ratio_from_prometheus_is_postgresqls(scenario: Scenario) -> None:
    """The availability SLO's error ratio (a rate over 1 h, which holds the whole scenario) equals
    the share of failed and timed-out rows: no failure escapes rate(), not even the first."""
    recorded = scenario.prometheus.scalar("slo:reeltrace_availability:error_ratio_rate1h", at=scenario.ended)
    assert recorded == pytest.approx(_failure_ratio(scenario.statuses), abs=1e-6), scenario.statuses


# --------------------------------------------------------------------------- exemplars


@pytest.mark.parametrize("histogram", HISTOGRAMS)
def test_exemplars_are_trace_ids_of_request_rows(scenario: Scenario, histogram: str) -> None:
    """Prometheus stored exemplars for the histogram, and each one's trace_id is the trace_id of
    a request row."""
    found = scenario.prometheus.exemplars(histogram, scenario.started - 5, scenario.ended)
    trace_ids = {e["labels"].get("trace_id") for series in found for e in series["exemplars"]}
    assert trace_ids, f"no exemplars stored for {histogram}"
    assert all(t and TRACE_ID.fullmatch(t) for t in trace_ids), trace_ids
    rows = scenario.rows("SELECT trace_id FROM video_requests WHERE trace_id = ANY(%s)", sorted(trace_ids))
    assert trace_ids == {t for (t,) in rows}


def test_request_duration_exemplar_is_its_request(scenario: Scenario) -> None:
    """A request-duration exemplar carries the status and duration of the row with its trace_id."""
    found = scenario.prometheus.exemplars(
        "reeltrace_request_duration_seconds_bucket", scenario.started - 5, scenario.ended
    )
    by_trace = {
        trace_id: (status, ms / 1000)
        for trace_id, status, ms in scenario.rows(
            "SELECT trace_id, status::text, duration_ms FROM video_requests WHERE id = ANY(%s)", scenario.ids
        )
    }
    checked = 0
    for series in found:
        for exemplar in series["exemplars"]:
            status, seconds = by_trace[exemplar["labels"]["trace_id"]]
            assert series["seriesLabels"]["status"] == status
            assert float(exemplar["value"]) == pytest.approx(seconds)
            assert seconds <= float(series["seriesLabels"]["le"])
            checked += 1
    assert checked


# --------------------------------------------------------------------------- alerts


def _page(prometheus: PrometheusServer, at: float | None = None) -> list[dict[str, Any]]:
    return prometheus.query(
        'ALERTS{alertname="ReeltraceAvailabilityBudgetBurn",severity="page",alertstate="firing"}', at
    )


def _objective(scenario: Scenario) -> float:
    return scenario.prometheus.scalar("slo:reeltrace_availability:objective", at=scenario.ended)


def _failure_ratio(statuses: dict[str, int]) -> float:
    return (statuses.get("failed", 0) + statuses.get("timeout", 0)) / sum(statuses.values())


def test_scenario_stays_under_the_page_burn_rates_and_over_the_ticket_one(scenario: Scenario) -> None:
    """With 3 % simulated failures the availability page alert is silent and the ticket fires."""
    ratio = _failure_ratio(scenario.statuses)
    budget = 1 - _objective(scenario)
    assert TICKET_BURN_RATE * budget < ratio < min(PAGE_BURN_RATES) * budget, scenario.statuses
    assert _page(scenario.prometheus, scenario.ended) == []
    ticket = scenario.prometheus.query(
        'ALERTS{alertname="ReeltraceAvailabilityBudgetBurn",severity="ticket",alertstate="firing"}',
        scenario.ended,
    )
    assert ticket, "the ticket burn-rate alert should fire at a 3 % failure ratio"


@pytest.fixture
def raised_failure_rate(scenario: Scenario) -> dict[str, int]:
    """serve restarted on the same port (the same scrape target) with an 80 % failure rate, and
    50 more requests terminal and scraped."""
    scenario.serve.stop()
    env = {**scenario.env, "REELTRACE_SIM_FAILURE_RATE": str(RAISED_FAILURE_RATE)}
    scenario.serve = start_serve(env, scenario.serve.port, scenario.workdir / "serve-raised.log")
    ids = _request_ids("raised", RAISED_REQUESTS)
    submit_all(scenario.serve.url, ids)
    statuses = _wait_terminal(scenario, ids, within=120)
    _wait_scraped(scenario.prometheus, RAISED_REQUESTS)
    return statuses


def test_availability_page_alert_fires_when_the_failure_rate_is_raised(
    scenario: Scenario, raised_failure_rate: dict[str, int]
) -> None:
    """After serve restarts with 80 % failures, the real ReeltraceAvailabilityBudgetBurn rule
    (no `for:`, its 5 m / 1 h windows holding every sample so far) fires at page severity."""
    assert _page(scenario.prometheus, scenario.ended) == []
    totals = {
        s: scenario.statuses.get(s, 0) + raised_failure_rate.get(s, 0)
        for s in {*scenario.statuses, *raised_failure_rate}
    }
    threshold = PAGE_BURN_RATES[0] * (1 - _objective(scenario))
    assert _failure_ratio(totals) > threshold, totals
    firing = scenario.prometheus.wait_until(
        "ReeltraceAvailabilityBudgetBurn firing at page severity",
        lambda: [
            a
            for a in scenario.prometheus.alerts()
            if a["labels"].get("alertname") == "ReeltraceAvailabilityBudgetBurn"
            and a["labels"].get("severity") == "page"
            and a["state"] == "firing"
        ],
        within=60,
    )
    assert firing[0]["labels"]["slo"] == "availability"
    for window in ("5m", "1h"):
        ratio = scenario.prometheus.scalar(f"slo:reeltrace_availability:error_ratio_rate{window}")
        assert ratio > threshold, (window, ratio)
