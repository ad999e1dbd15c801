"""`reeltrace serve` on the Google backends, end to end: Veo through the Vertex fake, Cloud Storage
through the emulator, requests completing with video URLs that download."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.backends.conftest import PROJECT
from tests.support.vertex_fake import FAKE_MP4, FILTER_REASONS, VertexFake

pytestmark = pytest.mark.slow

TERMINAL = {"completed", "failed", "timeout"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def service(
    database_url: str, vertex_fake: VertexFake, bucket: str, emulator_host: str, tmp_path: Path
) -> Iterator[Service]:
    """`reeltrace serve` (API and worker) on vertex generation and gcs storage, pointed at the fakes."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELTRACE_", "GOOGLE_", "OTEL_"))}
    env.update(
        DATABASE_URL=database_url,
        REELTRACE_DATA_DIR=str(tmp_path / "data"),
        REELTRACE_PORT=str(port),
        REELTRACE_GENERATION_BACKEND="vertex",
        GOOGLE_CLOUD_PROJECT=PROJECT,
        REELTRACE_VERTEX_BASE_URL=vertex_fake.base_url,
        REELTRACE_STORAGE_BACKEND="gcs",
        REELTRACE_GCS_BUCKET=bucket,
        STORAGE_EMULATOR_HOST=emulator_host,
        REELTRACE_GCS_URL_MODE="public",
        REELTRACE_POLL_INTERVAL_SECONDS="0.2",
        REELTRACE_WORKER_POLL_SECONDS="0.2",
        REELTRACE_API_KEYS_REQUIRED="false",
    )
    executable = shutil.which("reeltrace", path=str(Path(sys.executable).parent)) or "reeltrace"
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [executable, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"reeltrace serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"reeltrace serve did not become healthy:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Service(url, process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def submit(service: Service, user_id: str, prompt: str) -> str:
    response = httpx.post(
        f"{service.url}/api/v1/requests", json={"user_id": user_id, "prompt": prompt}, timeout=10
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["id"]
    return request_id


def wait_terminal(service: Service, request_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{service.url}/api/v1/monitoring/requests/{request_id}", timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in TERMINAL:
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"request {request_id} still {body['status']}:\n{service.log.read_text()[-3000:]}")
        time.sleep(0.2)


def test_requests_complete_with_downloadable_videos(
    service: Service, vertex_fake: VertexFake, bucket: str
) -> None:
    """Requests run through Veo (fake) and Cloud Storage (emulator) complete with video URLs that download."""
    ids = [submit(service, f"e2e-user-{i}", f"a hot-air balloon over hills, take {i}") for i in range(3)]
    for request_id in ids:
        request = wait_terminal(service, request_id)
        assert request["status"] == "completed", request
        assert request["gcs_prefix"] == f"gs://{bucket}/requests/{request_id}/"
        assert request["operation_name"].startswith(f"projects/{PROJECT}/locations/us-central1/")
        assert request["video_urls"]
        for url in request["video_urls"]:
            download = httpx.get(url, timeout=10)
            assert download.status_code == 200
            assert download.content == FAKE_MP4
    started = vertex_fake.requests_to("predictLongRunning")
    assert {r.body["parameters"]["storageUri"] for r in started} == {
        f"gs://{bucket}/requests/{request_id}/" for request_id in ids
    }


def test_filtered_request_fails_with_the_filter_reasons(service: Service) -> None:
    """A request whose videos Veo filters ends failed, with the filter reasons in its error."""
    request_id = submit(service, "e2e-filtered", "[fake:filter] a crowded stadium")
    request = wait_terminal(service, request_id)
    assert request["status"] == "failed", request
    assert request["video_urls"] == []
    assert FILTER_REASONS[0][:40] in (request["error_message"] or "")


def test_veo_generations_are_billed_per_output_second(service: Service) -> None:
    """Veo's answers bill like the simulated backend's: a completed 8 s video and a filtered one cost 8 s each."""
    completed = wait_terminal(service, submit(service, "e2e-cost", "a lighthouse at dawn"))
    filtered = wait_terminal(service, submit(service, "e2e-cost", "[fake:filter] a crowded stadium"))
    for request in (completed, filtered):
        assert request["billable_seconds"] == 8, request
        assert request["cost_usd"] == pytest.approx(8 * 0.10), request
