"""prometheus/: the scrape config, the rules and their promtool unit tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from service.pipeline.definitions import PIPELINES
from service.settings import Settings
from telemetry.metrics import DURATION_BUCKETS
from tests.config.support import (
    PROMETHEUS_CONFIG,
    RULE_TESTS_DIR,
    alert_rules,
    le_values,
    load_yaml,
    promql_problems,
    recording_rules,
    rule_files,
    rule_test_files,
    run_promtool,
)

SCRAPE_JOBS = {"reeltrace-api", "reeltrace-worker"}


def test_check_config_passes() -> None:
    """`promtool check config` accepts prometheus.yml and every rule file it loads."""
    result = run_promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_rules_passes() -> None:
    """`promtool check rules` accepts every rule file."""
    result = run_promtool("check", "rules", *map(str, rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", rule_test_files(), ids=lambda p: p.name)
def test_rule_unit_tests_pass(test_file: Path) -> None:
    """The promtool unit tests of the rules pass."""
    result = run_promtool("test", "rules", test_file.name, cwd=RULE_TESTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_loads_every_rule_file() -> None:
    """prometheus.yml's rule_files globs match every file in rules/."""
    config = load_yaml(PROMETHEUS_CONFIG)
    loaded = {
        path.resolve() for pattern in config["rule_files"] for path in PROMETHEUS_CONFIG.parent.glob(pattern)
    }
    assert loaded == {path.resolve() for path in rule_files()}


def test_every_rule_file_is_unit_tested() -> None:
    """Each rule file is loaded by at least one promtool test file."""
    tested = {
        (RULE_TESTS_DIR / name).resolve()
        for path in rule_test_files()
        for name in load_yaml(path).get("rule_files", [])
    }
    assert {path.resolve() for path in rule_files()} <= tested


def _rule_tests() -> list[dict[str, object]]:
    return [test for path in rule_test_files() for test in load_yaml(path)["tests"]]


def test_every_recording_rule_has_an_expected_value() -> None:
    """Every recording rule is the expression of at least one promql_expr_test with samples."""
    checked = {
        case["expr"].strip()
        for test in _rule_tests()
        for case in test.get("promql_expr_test", [])  # type: ignore[attr-defined]
        if case.get("exp_samples")
    }
    assert sorted(set(recording_rules()) - checked) == []


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    """Every alert has a test case where it fires and one where it does not."""
    firing: set[str] = set()
    silent: set[str] = set()
    for test in _rule_tests():
        for case in test.get("alert_rule_test", []):  # type: ignore[attr-defined]
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert sorted(names - firing) == []
    assert sorted(names - silent) == []


def test_every_multiwindow_alert_has_a_page_and_a_ticket() -> None:
    """The SLO and spend burn-rate alerts come in a page and a ticket severity."""
    for slo in ("Availability", "Latency", "Spend"):
        severities = {
            r["labels"]["severity"] for r in alert_rules() if r["alert"] == f"Reeltrace{slo}BudgetBurn"
        }
        assert severities == {"page", "ticket"}


def test_rules_read_only_declared_metrics_and_labels() -> None:
    """Every series and label the rules read is declared in telemetry.metrics (or recorded)."""
    recorded = recording_rules()
    problems = {
        name: found
        for name, expr in [*recorded.items(), *((r["alert"], r["expr"]) for r in alert_rules())]
        if (found := promql_problems(expr, recorded))
    }
    assert problems == {}


def test_latency_threshold_is_an_exact_bucket_as_the_client_renders_it() -> None:
    """Every `le` the rules match is a bucket bound, spelled as prometheus_client writes it."""
    rendered = {repr(float(bound)) for bound in DURATION_BUCKETS}
    used = {le for r in recording_rules().values() for le in le_values(r)}
    assert used
    assert used <= rendered


def test_scrape_config_has_the_api_and_the_worker() -> None:
    """prometheus.yml scrapes jobs reeltrace-api and reeltrace-worker, one target each."""
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    assert jobs.keys() >= SCRAPE_JOBS
    for name in SCRAPE_JOBS:
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"
        assert len(jobs[name]["static_configs"][0]["targets"]) == 1


def test_target_down_alert_covers_both_jobs() -> None:
    """The no-scrape alert watches `up` of exactly the two reeltrace jobs."""
    (rule,) = [r for r in alert_rules() if r["alert"] == "ReeltraceTargetDown"]
    match = re.search(r'up\{job=~"([^"]+)"\}', rule["expr"])
    assert match is not None
    assert set(match.group(1).split("|")) == SCRAPE_JOBS


def test_scrape_config_can_be_retargeted_at_local_ports(tmp_path: Path) -> None:
    """The same config, pointed at 127.0.0.1 and with absolute rule paths, still checks out."""
    config = load_yaml(PROMETHEUS_CONFIG)
    ports = {"reeltrace-api": 8000, "reeltrace-worker": 9100}
    for job in config["scrape_configs"]:
        if job["job_name"] in ports:
            job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / pattern) for pattern in config["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run_promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _threshold(status: str) -> float:
    (rule,) = [r for r in alert_rules() if r["alert"] == "ReeltraceOldestRequestOverBudget"]
    match = re.search(rf'status="{status}"\}}\)\s*>\s*([0-9.]+)', rule["expr"])
    assert match is not None
    return float(match.group(1))


def test_pending_budget_matches_the_setting_default() -> None:
    """The pending threshold is REELTRACE_PENDING_BUDGET_SECONDS' default."""
    assert _threshold("pending") == Settings.model_fields["pending_budget_seconds"].default


def test_generating_budget_covers_every_default_pipeline_budget() -> None:
    """No built-in pipeline may, with default settings, run longer than the generating threshold."""
    timeout = Settings.model_fields["generation_timeout_seconds"].default
    longest = max(p.budget_seconds(timeout) for p in PIPELINES.values())
    assert longest <= _threshold("generating")
