"""What the configuration checks share: the files, Grafana's variable syntax, promtool, and
the catalogue of metric names and labels declared in `telemetry.metrics`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from telemetry.metrics import Metrics
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
GRAFANA_DIR = ROOT / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yaml"
DASHBOARD_PROVIDER_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "reeltrace.yaml"
COLLECTOR_CONFIG = ROOT / "otel-collector" / "config.yaml"
COMPOSE_FILE = ROOT / "docker-compose.yml"

# Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def promtool() -> str:
    return require_tool("promtool", shutil.which("promtool"))


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, check=False, cwd=cwd, timeout=120
    )


def check_promql(exprs: Mapping[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on a throwaway rules file recording each expression."""
    rules = [{"record": name, "expr": expr} for name, expr in exprs.items()]
    path = workdir / "exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}, sort_keys=False))
    return run_promtool("check", "rules", str(path))


# --------------------------------------------------------------------------- rules


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rules() -> Iterator[dict[str, Any]]:
    for path in rule_files():
        for group in load_yaml(path)["groups"]:
            yield from group["rules"]


def recording_rules() -> dict[str, str]:
    return {r["record"]: r["expr"] for r in rules() if "record" in r}


def alert_rules() -> list[dict[str, Any]]:
    return [r for r in rules() if "alert" in r]


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


# --------------------------------------------------------------------------- metrics


@cache
def metric_catalogue() -> dict[str, frozenset[str]]:
    """Every series name reeltrace exposes, with its label names."""
    metrics = Metrics(CollectorRegistry())
    catalogue: dict[str, frozenset[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        labels = frozenset(value._labelnames)
        for family in value.describe():
            if family.type == "counter":
                catalogue[f"{family.name}_total"] = labels
            elif family.type == "histogram":
                catalogue[f"{family.name}_bucket"] = labels | {"le"}
                catalogue[f"{family.name}_count"] = labels
                catalogue[f"{family.name}_sum"] = labels
            else:
                catalogue[family.name] = labels
    return catalogue


def recorded_labels(name: str) -> frozenset[str]:
    """A recording rule's labels, named by its level (`pipeline_stage:...` has pipeline and stage)."""
    level = name.split(":", 1)[0]
    return frozenset() if level == "slo" else frozenset(level.split("_"))


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"(?<![\w:])(reeltrace_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# A raw name is not part of a recording rule's name (`level:reeltrace_...:op`).
_RAW_NAME = re.compile(r"(?<![\w:])reeltrace_[a-z0-9_]+(?![\w:])")
_RECORDED_NAME = re.compile(r"\b[a-z_]+:[a-z0-9_:]+\b")
_LE = re.compile(r'\ble\s*=\s*"([^"]*)"')


def promql_problems(expr: str, recorded: Mapping[str, str]) -> list[str]:
    """Names and labels in `expr` that reeltrace does not expose (empty when all is well)."""
    catalogue = metric_catalogue()
    bare = _STRING.sub('""', expr)
    problems: list[str] = []
    raw = set(_RAW_NAME.findall(bare))
    recorded_names = set(_RECORDED_NAME.findall(bare))
    problems += [f"unknown metric {n}" for n in sorted(raw - catalogue.keys())]
    problems += [f"unknown recording rule {n}" for n in sorted(recorded_names - recorded.keys())]
    for metric, matchers in _SELECTOR.findall(expr):
        allowed = catalogue.get(metric, frozenset()) | TARGET_LABELS
        problems += [
            f"{metric} has no label {label}" for label in _MATCHER.findall(matchers) if label not in allowed
        ]
    available = set(TARGET_LABELS)
    for name in raw:
        available |= catalogue.get(name, frozenset())
    for name in recorded_names:
        available |= recorded_labels(name)
    if "ALERTS" not in bare:
        for group in _GROUPING.findall(bare):
            labels = {label.strip() for label in group.split(",") if label.strip()}
            problems += [f"no series here has label {label}" for label in sorted(labels - available)]
    return problems


def le_values(expr: str) -> list[str]:
    return _LE.findall(expr)


# --------------------------------------------------------------------------- Grafana


def dashboards() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, json.loads(path.read_text())) for path in sorted(DASHBOARDS_DIR.glob("*.json"))]


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard.get("templating", {}).get("list", []))


def target_datasource(panel: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    return dict(target.get("datasource") or panel.get("datasource") or {})


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    return {ds["uid"]: ds for ds in load_yaml(DATASOURCES_FILE)["datasources"]}


def datasource_type(uid: str) -> str:
    return str(provisioned_datasources()[uid]["type"])


# $name, ${name}, ${name:format}, [[name]]; Grafana's three variable syntaxes.
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)|\[\[(\w+)(?::(\w+))?\]\]")

# What Grafana puts in for its built-in variables, as a Prometheus query sees them.
PROMQL_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}


def variable_references(text: str) -> list[tuple[str, str | None]]:
    """(name, format) of every variable used in `text`, macros included."""
    found = []
    for m in _VARIABLE.finditer(text):
        name = m.group(1) or m.group(3) or m.group(4)
        found.append((name, m.group(2) or m.group(5)))
    return found


def substitute(text: str, values: Mapping[str, str], sql: bool = False) -> str:
    """`text` with every variable replaced as Grafana would; KeyError names one it does not know.

    In SQL, the `sqlstring` format quotes the value; a variable without it is refused,
    since Grafana would paste the text in as it is.
    """

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3) or m.group(4)
        fmt = m.group(2) or m.group(5)
        value = values[name]
        if not sql or name.startswith("__"):
            return value
        if fmt != "sqlstring":
            raise KeyError(f"${name} in SQL must be written ${{{name}:sqlstring}}")
        return "'" + value.replace("'", "''") + "'"

    return _VARIABLE.sub(replace, text)


def promql_variable_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """A value for each variable of a dashboard, as a PromQL query would receive it."""
    values = dict(PROMQL_BUILTINS)
    for var in variables(dashboard):
        if var["type"] == "constant":
            values[var["name"]] = var["query"]
        elif var.get("includeAll"):
            values[var["name"]] = var.get("allValue") or ".*"
        else:
            values[var["name"]] = "x"
    return values


_TIME_FILTER = re.compile(r"\$__timeFilter\(([^)]*)\)")


def render_sql(text: str, values: Mapping[str, str], time_from: str, time_to: str) -> str:
    """`text` with Grafana's PostgreSQL macros and variables replaced; KeyError on any other."""
    text = _TIME_FILTER.sub(lambda m: f"{m.group(1)} BETWEEN '{time_from}' AND '{time_to}'", text)
    text = text.replace("$__timeFrom()", f"'{time_from}'").replace("$__timeTo()", f"'{time_to}'")
    if "$__" in text:
        raise KeyError(f"unhandled Grafana macro in: {text}")
    return substitute(text, values, sql=True)


def label_values_query(query: str) -> tuple[str, str] | None:
    """(selector, label) of a `label_values(selector, label)` variable query."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query)
    return (m.group(1), m.group(2)) if m else None


# --------------------------------------------------------------------------- compose


def compose() -> dict[str, Any]:
    return dict(load_yaml(COMPOSE_FILE))


def compose_service(name: str) -> dict[str, Any]:
    return dict(compose()["services"][name])


def bind_mounts(service: Mapping[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of each bind mount of a compose service."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((COMPOSE_FILE.parent / source).resolve(), target))
    return mounts


def host_path(service: Mapping[str, Any], container_path: str) -> Path | None:
    """The host file a container path of `service` comes from, through its bind mounts."""
    for source, target in bind_mounts(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target) :].lstrip("/")
    return None


def published_ports(service: Mapping[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    ports = {}
    for spec in service.get("ports", []):
        parts = str(spec).split(":")
        ports[int(parts[-1])] = int(parts[-2])
    return ports


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}
