"""docker-compose.yml: the services, pinned images, files that exist and ports that agree."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.config.support import (
    COMPOSE_FILE,
    PROMETHEUS_CONFIG,
    bind_mounts,
    compose,
    compose_service,
    dashboards,
    environment,
    host_path,
    load_yaml,
    published_ports,
)

STACK = ("postgres", "reeltrace", "reeltrace-worker", "otel-collector", "jaeger", "prometheus", "grafana")
SERVICES: dict[str, Any] = compose()["services"]
# A tag with at least major.minor: `latest`, `3` or `3-slim` would move under us.
PINNED_TAG = re.compile(r"v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)*")

by_service = pytest.mark.parametrize("name", sorted(SERVICES))


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def test_the_stack_has_its_services() -> None:
    """postgres, the API, a worker, the collector, Jaeger, Prometheus and Grafana."""
    assert set(STACK) <= SERVICES.keys()


@by_service
def test_image_tag_is_pinned(name: str) -> None:
    """Every image names an exact version (not latest, not a bare major)."""
    image = SERVICES[name]["image"]
    assert "@" not in image or image.split("@")[1].startswith("sha256:")
    _, _, tag = image.rpartition(":")
    assert PINNED_TAG.fullmatch(tag), image


@by_service
def test_bind_mounted_paths_exist(name: str) -> None:
    """Every file or directory a service mounts from the checkout exists."""
    for source, _target in bind_mounts(SERVICES[name]):
        assert source.exists(), source
        assert COMPOSE_FILE.parent.resolve() in source.parents


@by_service
def test_named_volumes_are_declared(name: str) -> None:
    """Volumes that are not bind mounts are declared at the top level."""
    declared = set(compose().get("volumes", {}))
    for volume in SERVICES[name].get("volumes", []):
        source = str(volume).split(":")[0]
        if not source.startswith((".", "/")):
            assert source in declared, source


@by_service
def test_dependencies_exist(name: str) -> None:
    """depends_on names only services of this file."""
    assert set(SERVICES[name].get("depends_on", [])) <= SERVICES.keys()


def test_config_files_named_in_commands_are_mounted_and_exist() -> None:
    """--config.file (Prometheus) and --config (collector) resolve to files in the checkout."""
    for name, flag in (("prometheus", "--config.file="), ("otel-collector", "--config=")):
        service = compose_service(name)
        (path,) = [arg.removeprefix(flag) for arg in _command(service) if arg.startswith(flag)]
        on_host = host_path(service, path)
        assert on_host is not None, (name, path)
        assert on_host.is_file(), (name, path)


def test_prometheus_keeps_exemplars() -> None:
    """Prometheus runs with exemplar storage on and sees this checkout's rules."""
    prometheus = compose_service("prometheus")
    assert "--enable-feature=exemplar-storage" in _command(prometheus)
    assert host_path(prometheus, "/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG.resolve()


def _listening_port(service_name: str) -> int:
    """The port a reeltrace process serves /metrics on, from its command and environment."""
    service = compose_service(service_name)
    env = environment(service)
    command = _command(service)
    if "serve" in command:
        return int(env.get("REELTRACE_PORT", "8000"))
    assert "worker" in command
    return int(env["REELTRACE_METRICS_PORT"])


def test_scrape_targets_are_the_compose_services_and_their_ports() -> None:
    """Each reeltrace scrape target is a compose service and the port its process listens on."""
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    for job in ("reeltrace-api", "reeltrace-worker"):
        (target,) = jobs[job]["static_configs"][0]["targets"]
        host, port = target.split(":")
        assert int(port) == _listening_port(host), job
        # Prometheus runs in another container, so the process must listen on every interface.
        assert environment(compose_service(host))["REELTRACE_HOST"] == "0.0.0.0"  # noqa: S104


def test_ui_ports_are_published_on_localhost_as_documented() -> None:
    """Grafana 3000, Prometheus 9090, Jaeger 16686, the API 8000: same port inside and out, loopback only."""
    expected = {"grafana": 3000, "prometheus": 9090, "jaeger": 16686, "reeltrace": 8000}
    for name, port in expected.items():
        assert published_ports(compose_service(name)).get(port) == port, name
    for name, service in SERVICES.items():
        for spec in service.get("ports", []):
            assert str(spec).startswith("127.0.0.1:"), (name, spec)


def test_database_url_matches_the_postgres_service() -> None:
    """DATABASE_URL names the postgres service, its port, database, user and password."""
    pg = environment(compose_service("postgres"))
    for name in ("migrate", "reeltrace", "reeltrace-worker"):
        url = urlsplit(environment(compose_service(name))["DATABASE_URL"])
        assert (url.hostname, url.port) == ("postgres", 5432)
        assert url.path == f"/{pg['POSTGRES_DB']}"
        assert (url.username, url.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])


def test_jaeger_url_for_links_is_the_published_ui() -> None:
    """The service and the dashboards link to Jaeger at the UI port compose publishes."""
    configured = environment(compose_service("reeltrace"))["REELTRACE_JAEGER_URL"]
    assert urlsplit(configured).port in published_ports(compose_service("jaeger")).values()
    for _, dashboard in dashboards():
        constants = [v["query"] for v in dashboard["templating"]["list"] if v["name"] == "jaeger_url"]
        assert constants in ([], [configured]), dashboard["uid"]


def test_loadgen_submits_to_the_api_service() -> None:
    """The load generator posts to the reeltrace service's port, which runs without API keys."""
    script = " ".join(_command(compose_service("loadgen")))
    (url,) = re.findall(r"http://[\w.-]+:\d+/api/v1/requests", script)
    parsed = urlsplit(url)
    assert parsed.port == _listening_port(str(parsed.hostname))
    assert environment(compose_service("reeltrace"))["REELTRACE_API_KEYS_REQUIRED"] == "false"
    assert "$" not in script  # compose would try to interpolate it


def test_app_services_start_after_the_migration() -> None:
    """The API and the worker wait for the one-shot migration, which waits for PostgreSQL."""
    for name in ("reeltrace", "reeltrace-worker"):
        assert compose_service(name)["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    migrate = compose_service("migrate")
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert _command(migrate)[-1] == "migrate"
