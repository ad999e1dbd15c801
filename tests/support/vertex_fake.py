"""A local fake of the Vertex AI routes reeltrace calls, speaking their real JSON.

Routes (all `POST`, under `/v1/projects/{p}/locations/{l}/publishers/google/models/{m}`):

- `:predictLongRunning` starts a Veo job and answers `{"name": ".../operations/<uuid>"}`;
- `:fetchPredictOperation` (body `{"operationName": ...}`) answers the operation:
  `{"name", "done": false}` while running, then `done` with a `response` holding
  `videos[]` (or `raiMediaFilteredCount`/`raiMediaFilteredReasons` and no videos),
  or `done` with an `error` `{code, message}`;
- `:generateContent` answers one Gemini candidate (`script_text`; `None` blocks the prompt);
- `:predict` answers text embeddings (`tests.support.vertex_embeddings`).

Outcomes are chosen per operation by markers in the prompt (`[fake:fail]`,
`[fake:filter]`, `[fake:hang]`; `[fake:quota]`, `[fake:unavailable]` and
`[fake:invalid]` make the start call itself answer 429, 503 or 400), or from the test
with `fail_next(status)`, which makes the next matching calls answer an HTTP error.
Every request is recorded (path, headers, JSON body) for assertions.

When a job succeeds, the fake writes the videos where Veo would: under the request's
`storageUri` in a numbered subfolder, into a storage emulator if one is given; without
`storageUri` the videos come back inline as `bytesBase64Encoded`, as Veo does.

Run it alone with `python -m tests.support.vertex_fake --port 8085`.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.vertex_embeddings import predict_embeddings

_MODEL_ROUTE = re.compile(
    r"^/(?P<version>v1|v1beta1)/(?P<resource>projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google/models/(?P<model>[^/:]+)):(?P<method>predictLongRunning|fetchPredictOperation|generateContent|predict)$"
)

VIDEO_RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"

# A minimal MP4 (`ftyp`, `free`, `mdat` boxes): what the fake "generates".
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom\x00\x00\x00\x08free\x00\x00\x00\x08mdat"

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

FILTER_REASONS = [
    "Your current safety settings for person generation prevented one or more videos from being "
    "generated. Support codes: 17301594",
]
OPERATION_ERROR = {
    "code": 3,
    "message": "Video generation failed: the prompt could not be processed. "
    "(request access_token=ya29.fake-secret-token)",
}


def error_body(status: int, model: str = "veo-3.1-fast-generate-001") -> dict[str, Any]:
    """Google's HTTP error JSON for a status code."""
    messages = {
        429: f"Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "
        f"with base model: {model}. Please submit a quota increase request.",
        503: "The service is currently unavailable.",
        500: "Internal error encountered.",
        404: "The requested resource was not found.",
    }
    return {
        "error": {
            "code": status,
            "message": messages.get(status, "Request contains an invalid argument."),
            "status": _STATUS_NAMES.get(status, "FAILED_PRECONDITION"),
        }
    }


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def route(self) -> str:
        return self.path.rpartition(":")[2]


@dataclass
class FakeOperation:
    name: str
    body: dict[str, Any]
    outcome: str
    polls_until_done: int
    number: int
    polls: int = 0
    videos: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Injected:
    status: int
    route: str | None
    remaining: int


class VertexFake:
    """The fake server; use as a context manager or call `start()`/`stop()`."""

    def __init__(
        self,
        *,
        polls_until_done: int = 1,
        storage_emulator_host: str | None = None,
        script_text: str | None = "A bright classroom; a teacher draws the water cycle on a whiteboard.",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.polls_until_done = polls_until_done
        self.storage_emulator_host = storage_emulator_host
        self.script_text = script_text
        self.requests: list[RecordedRequest] = []
        self.operations: dict[str, FakeOperation] = {}
        self._injected: list[_Injected] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1_000_000_000_000_000_001)
        self._storage_client: Any = None
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> VertexFake:
        # A short poll interval keeps `stop()` (which waits for one poll) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="vertex-fake", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> VertexFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test-side controls ----------------------------------------------------------
    def fail_next(self, status: int, *, route: str | None = None, times: int = 1) -> None:
        """Answer the next `times` calls (of `route`, e.g. `fetchPredictOperation`) with `status`."""
        with self._lock:
            self._injected.append(_Injected(status, route, times))

    def requests_to(self, route: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.route == route]

    # --- request handling ------------------------------------------------------------
    def _take_injected(self, route: str) -> int | None:
        with self._lock:
            for injected in self._injected:
                if injected.route in (None, route) and injected.remaining > 0:
                    injected.remaining -= 1
                    if injected.remaining == 0:
                        self._injected.remove(injected)
                    return injected.status
        return None

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(RecordedRequest("POST", path, headers, body))
        match = _MODEL_ROUTE.match(path)
        if match is None:
            return 404, error_body(404)
        method, model = match["method"], match["model"]
        injected = self._take_injected(method)
        if injected is not None:
            return injected, error_body(injected, model)
        if method == "predictLongRunning":
            return self._start(match["resource"], model, body)
        if method == "fetchPredictOperation":
            return self._fetch(match["resource"], body)
        if method == "predict":
            return predict_embeddings(body)
        return 200, self._generate_content()

    def _start(self, resource: str, model: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        instances = body.get("instances") or [{}]
        prompt = str(instances[0].get("prompt", ""))
        for marker, status in (("[fake:quota]", 429), ("[fake:unavailable]", 503), ("[fake:invalid]", 400)):
            if marker in prompt:
                return status, error_body(status, model)
        outcome = "succeed"
        for marker in ("fail", "filter", "hang"):
            if f"[fake:{marker}]" in prompt:
                outcome = marker
        name = f"{resource}/operations/{uuid.uuid4()}"
        polls = 10**9 if outcome == "hang" else self.polls_until_done
        with self._lock:
            self.operations[name] = FakeOperation(name, body, outcome, polls, next(self._numbers))
        return 200, {"name": name}

    def _fetch(self, resource: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = str(body.get("operationName", ""))
        with self._lock:
            op = self.operations.get(name)
            if op is None or not name.startswith(resource + "/operations/"):
                return 404, error_body(404)
            op.polls += 1
            done = op.polls > op.polls_until_done
        if not done:
            return 200, {"name": name, "done": False}
        if op.outcome == "fail":
            return 200, {"name": name, "done": True, "error": OPERATION_ERROR}
        params = op.body.get("parameters", {})
        if op.outcome == "filter":
            count = int(params.get("sampleCount", 1))
            response = {
                "@type": VIDEO_RESPONSE_TYPE,
                "raiMediaFilteredCount": count,
                "raiMediaFilteredReasons": FILTER_REASONS,
            }
            return 200, {"name": name, "done": True, "response": response}
        if not op.videos:
            op.videos = self._write_videos(op, params)
        response = {"@type": VIDEO_RESPONSE_TYPE, "raiMediaFilteredCount": 0, "videos": op.videos}
        return 200, {"name": name, "done": True, "response": response}

    def _write_videos(self, op: FakeOperation, params: dict[str, Any]) -> list[dict[str, Any]]:
        storage_uri = params.get("storageUri")
        count = int(params.get("sampleCount", 1))
        if not storage_uri:
            encoded = base64.b64encode(FAKE_MP4).decode()
            return [{"bytesBase64Encoded": encoded, "mimeType": "video/mp4"} for _ in range(count)]
        base = str(storage_uri).rstrip("/") + f"/{op.number}/"
        videos = [{"gcsUri": f"{base}sample_{i}.mp4", "mimeType": "video/mp4"} for i in range(count)]
        if self.storage_emulator_host:
            for video in videos:
                self._upload(video["gcsUri"])
        return videos

    def _upload(self, gcs_uri: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        if self._storage_client is None:
            self._storage_client = storage.Client(
                project="vertex-fake",
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": self.storage_emulator_host},
            )
        bucket, _, name = gcs_uri.removeprefix("gs://").partition("/")
        self._storage_client.bucket(bucket).blob(name).upload_from_string(FAKE_MP4, content_type="video/mp4")

    def _generate_content(self) -> dict[str, Any]:
        if self.script_text is None:  # the prompt was blocked: no candidates at all
            return {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": "gemini-2.5-flash"}
        return {
            "candidates": [
                {"content": {"parts": [{"text": self.script_text}], "role": "model"}, "finishReason": "STOP"}
            ],
            "usageMetadata": {"promptTokenCount": 42, "candidatesTokenCount": 17, "totalTokenCount": 59},
            "modelVersion": "gemini-2.5-flash",
        }


def _handler_for(fake: VertexFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                self._reply(400, error_body(400))
                return
            path = self.path.partition("?")[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = fake.handle(path, headers, body)
            self._reply(status, payload)

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument("--polls-until-done", type=int, default=1)
    parser.add_argument("--storage-emulator-host", default=None)
    args = parser.parse_args()
    fake = VertexFake(
        host=args.host,
        port=args.port,
        polls_until_done=args.polls_until_done,
        storage_emulator_host=args.storage_emulator_host,
    )
    fake.start()
    print(f"Vertex fake on {fake.base_url}", flush=True)  # noqa: T201
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
