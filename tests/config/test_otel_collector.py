"""otel-collector/config.yaml: OTLP in on every interface, limited and batched, OTLP out to Jaeger."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.config.support import COLLECTOR_CONFIG, compose_service, environment, load_yaml, published_ports


def _config() -> dict[str, Any]:
    return dict(load_yaml(COLLECTOR_CONFIG))


def _traces() -> dict[str, list[str]]:
    return dict(_config()["service"]["pipelines"]["traces"])


def test_otlp_receiver_listens_on_all_interfaces() -> None:
    """gRPC on 0.0.0.0:4317 and HTTP on 0.0.0.0:4318 (the default, localhost, is unreachable)."""
    protocols = _config()["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"


def test_traces_pipeline_limits_memory_then_batches() -> None:
    """The traces pipeline takes OTLP and runs memory_limiter first, then batch."""
    traces = _traces()
    assert traces["receivers"] == ["otlp"]
    assert traces["processors"] == ["memory_limiter", "batch"]


def test_traces_go_to_jaeger_over_otlp() -> None:
    """The pipeline exports with an OTLP/gRPC exporter to the jaeger service's port 4317."""
    exporters = _config()["exporters"]
    (name,) = _traces()["exporters"]
    assert name.split("/")[0] == "otlp_grpc"
    host, port = exporters[name]["endpoint"].split(":")
    assert (host, port) == ("jaeger", "4317")
    assert exporters[name]["tls"]["insecure"] is True
    compose_service("jaeger")


def test_every_component_in_a_pipeline_is_defined() -> None:
    """Receivers, processors and exporters named by pipelines are configured, and none is unused."""
    config = _config()
    for kind in ("receivers", "processors", "exporters"):
        used = {c for pipeline in config["service"]["pipelines"].values() for c in pipeline.get(kind, [])}
        assert used == set(config.get(kind, {})), kind


def test_compose_publishes_the_receiver_ports_and_services_send_there() -> None:
    """Compose publishes 4317 and 4318, and the service exports to the collector's HTTP port."""
    collector = compose_service("otel-collector")
    assert {4317, 4318} <= published_ports(collector).keys()
    for name in ("reeltrace", "reeltrace-worker"):
        url = urlsplit(environment(compose_service(name))["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert (url.hostname, url.port) == ("otel-collector", 4318)
