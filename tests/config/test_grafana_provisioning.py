"""grafana/provisioning: datasources and the dashboard provider agree with the rest of the stack."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import TracerProvider

from telemetry.metrics import current_exemplar
from tests.config.support import (
    DASHBOARD_PROVIDER_FILE,
    DASHBOARDS_DIR,
    DATASOURCES_FILE,
    GRAFANA_DIR,
    PROMETHEUS_CONFIG,
    compose_service,
    environment,
    host_path,
    load_yaml,
    provisioned_datasources,
)

READER_ROLE_MIGRATION = "migrations/versions/0002_grafana_reader.py"


def test_datasources_have_unique_uids_and_names() -> None:
    """Each datasource has its own uid and name, and exactly one is the default."""
    sources = load_yaml(DATASOURCES_FILE)["datasources"]
    assert len({s["uid"] for s in sources}) == len(sources)
    assert len({s["name"] for s in sources}) == len(sources)
    assert [s["uid"] for s in sources if s.get("isDefault")] == ["prometheus"]


def test_prometheus_exemplars_link_to_jaeger_by_the_label_the_service_emits() -> None:
    """The exemplar destination is named after the label telemetry.metrics puts on exemplars."""
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("span"):
        exemplar = current_exemplar()
    assert exemplar is not None
    (destination,) = provisioned_datasources()["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["name"] in exemplar
    assert destination["datasourceUid"] == "jaeger"
    assert provisioned_datasources()["jaeger"]["type"] == "jaeger"


def test_prometheus_step_is_the_scrape_interval() -> None:
    """The datasource's timeInterval equals Prometheus' scrape_interval."""
    scrape = load_yaml(PROMETHEUS_CONFIG)["global"]["scrape_interval"]
    assert provisioned_datasources()["prometheus"]["jsonData"]["timeInterval"] == scrape


def test_postgres_datasource_logs_in_as_the_read_only_role() -> None:
    """Grafana reads PostgreSQL as reeltrace_reader, the role migration 0002 creates."""
    pg = provisioned_datasources()["reeltrace-postgres"]
    migration = (GRAFANA_DIR.parent / READER_ROLE_MIGRATION).read_text()
    assert pg["type"] == "grafana-postgresql-datasource"
    assert pg["user"] == "reeltrace_reader"
    assert f"CREATE ROLE {pg['user']} LOGIN" in migration


def test_postgres_password_comes_from_the_same_variable_as_the_migration() -> None:
    """The datasource password and the migration read REELTRACE_READER_PASSWORD, and compose sets both."""
    pg = provisioned_datasources()["reeltrace-postgres"]
    (variable,) = re.findall(r"^\$\{(\w+)\}$", pg["secureJsonData"]["password"])
    migration = (GRAFANA_DIR.parent / READER_ROLE_MIGRATION).read_text()
    assert f'"{variable}"' in migration
    grafana_value = environment(compose_service("grafana"))[variable]
    migrate_value = environment(compose_service("migrate"))[variable]
    assert grafana_value == migrate_value


def test_postgres_datasource_points_at_the_compose_database() -> None:
    """Host, port and database are the compose postgres service's."""
    pg = provisioned_datasources()["reeltrace-postgres"]
    host, port = pg["url"].split(":")
    postgres = compose_service(host)
    assert port == "5432"
    assert pg["jsonData"]["database"] == environment(postgres)["POSTGRES_DB"]


def test_http_datasources_point_at_compose_services_and_ports() -> None:
    """Prometheus at prometheus:9090, Jaeger's query API at jaeger:16686."""
    expected = {"prometheus": ("prometheus", 9090), "jaeger": ("jaeger", 16686)}
    for uid, (service, port) in expected.items():
        url = urlsplit(provisioned_datasources()[uid]["url"])
        assert (url.hostname, url.port) == (service, port)
        compose_service(service)


def test_provider_loads_the_mounted_dashboards_directory() -> None:
    """The provider's path is where compose mounts grafana/dashboards."""
    (provider,) = load_yaml(DASHBOARD_PROVIDER_FILE)["providers"]
    assert provider["type"] == "file"
    assert host_path(compose_service("grafana"), provider["options"]["path"]) == DASHBOARDS_DIR.resolve()
    assert any(DASHBOARDS_DIR.glob("*.json"))


def test_provisioning_directory_is_mounted_where_grafana_reads_it() -> None:
    """grafana/provisioning is mounted at /etc/grafana/provisioning."""
    mounted = host_path(compose_service("grafana"), "/etc/grafana/provisioning")
    assert mounted == (GRAFANA_DIR / "provisioning").resolve()
    datasources = "/etc/grafana/provisioning/datasources/datasources.yaml"
    assert host_path(compose_service("grafana"), datasources) == DATASOURCES_FILE.resolve()


def test_home_dashboard_is_a_provisioned_file() -> None:
    """Grafana opens on a dashboard file that exists."""
    grafana = compose_service("grafana")
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    path = host_path(grafana, home)
    assert path is not None
    assert path.is_file()
