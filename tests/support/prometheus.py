"""A real Prometheus server for tests: the project's config re-targeted at local ports.

The server is the Debian `prometheus` binary on 127.0.0.1, with a throwaway TSDB and
exemplar storage on. Its HTTP API answers through `PrometheusServer`; every wait is
bounded and fails with what the server said.
"""

from __future__ import annotations

import math
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml  # type: ignore[import-untyped]  # no stubs installed


def free_port() -> int:
    """A port the OS has just handed out on 127.0.0.1 (free unless someone races for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def retargeted_config(
    base: Path,
    targets: Mapping[str, str | None],
    *,
    interval: str = "1s",
) -> dict[str, Any]:
    """`base` with each named job scraping `targets[job]` (None drops the job), every
    interval set to `interval`, and rule file patterns made absolute."""
    config: dict[str, Any] = yaml.safe_load(base.read_text())
    config["global"] = {
        **config.get("global", {}),
        "scrape_interval": interval,
        # Prometheus refuses a scrape timeout longer than the interval (the default is 10 s).
        "scrape_timeout": interval,
        "evaluation_interval": interval,
    }
    config["rule_files"] = [str(base.parent / pattern) for pattern in config.get("rule_files", [])]
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name in targets:
            target = targets[name]
            if target is None:
                continue
            job = {**job, "static_configs": [{"targets": [target]}]}
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


def _unix(rfc3339: str) -> float:
    """Unix time of Prometheus's RFC 3339 timestamps (nanoseconds cut to microseconds)."""
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()


class PrometheusError(AssertionError):
    """Prometheus refused a query or did not reach the expected state in time."""


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    """Every finite sample value of an instant (`value`) or range (`values`) query result."""
    raw = [series["value"][1] for series in result if "value" in series]
    raw += [point[1] for series in result for point in series.get("values", [])]
    return [v for v in map(float, raw) if math.isfinite(v)]


@dataclass
class PrometheusServer:
    """A running Prometheus and its HTTP API."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: Any) -> Any:
        """The `data` of a successful `/api/v1/<path>` answer."""
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"/api/v1/{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] != "scalar" else [data]
        return result

    def query_range(self, expr: str, start: float, end: float, step: str) -> list[dict[str, Any]]:
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step)
        result: list[dict[str, Any]] = data["result"]
        return result

    def scalar(self, expr: str, at: float | None = None) -> float:
        """The value of a query that must return exactly one sample."""
        result = self.query(expr, at)
        if len(result) != 1:
            raise PrometheusError(f"{expr}: expected one sample, got {result}")
        return float(result[0]["value"][1])

    def exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.api(
            "query_exemplars", query=expr, start=f"{start:.3f}", end=f"{end:.3f}"
        )
        return data

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return active

    def wait_until(self, what: str, check: Any, within: float, every: float = 0.25) -> Any:
        """Call `check()` until it returns something truthy, and return that."""
        deadline = time.monotonic() + within
        last: Any = None
        while time.monotonic() < deadline:
            self.assert_running()
            last = check()
            if last:
                return last
            time.sleep(every)
        raise PrometheusError(f"{what}: not reached within {within} s (last: {last!r})")

    def wait_for_scrape(self, job: str, within: float = 30.0) -> dict[str, Any]:
        """Wait until `job`'s target was scraped successfully, then return the target."""

        def healthy() -> dict[str, Any] | None:
            for target in self.targets():
                if target["labels"].get("job") == job and target["health"] == "up":
                    return target
            return None

        found: dict[str, Any] = self.wait_until(f"a successful scrape of job {job}", healthy, within)
        return found

    def wait_for_rules_after(self, unix_time: float, within: float = 30.0) -> None:
        """Wait until every rule group has finished an evaluation at or after `unix_time`, so
        recorded series and alert states reflect the samples scraped up to then."""

        def evaluated() -> bool:
            groups = self.api("rules")["groups"]
            return bool(groups) and all(_unix(g["lastEvaluation"]) >= unix_time for g in groups)

        self.wait_until(f"every rule group evaluated after {unix_time:.3f}", evaluated, within)

    def assert_running(self) -> None:
        if self.process.poll() is not None:
            raise PrometheusError(f"prometheus exited ({self.process.returncode}):\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _start(binary: str, config_file: Path, storage: Path, port: int, log: Path) -> PrometheusServer:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=storage.parent,
        )
    return PrometheusServer(f"http://127.0.0.1:{port}", process, log)


def _ready(server: PrometheusServer) -> bool:
    with suppress(httpx.HTTPError):
        return httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200
    return False


@contextmanager
def running_prometheus(
    binary: str, config: Mapping[str, Any], workdir: Path, *, within: float = 30.0
) -> Iterator[PrometheusServer]:
    """Prometheus with `config` until the block ends; `workdir` holds its config, TSDB and log.

    Its port comes from the OS; if someone takes it before Prometheus binds it,
    another is tried.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    log = workdir / "prometheus.log"
    for attempt in range(1, 4):
        server = _start(binary, config_file, workdir / "tsdb", free_port(), log)
        deadline = time.monotonic() + within
        while server.process.poll() is None and not _ready(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        if server.process.poll() is None and _ready(server):
            break
        server.stop()
        if attempt == 3 or "address already in use" not in server.tail():
            raise PrometheusError(f"prometheus did not become ready within {within} s:\n{server.tail()}")
    try:
        yield server
    finally:
        server.stop()
