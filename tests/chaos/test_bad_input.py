"""Chaos: a bad-input sweep over every route, with and without credentials."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.chaos import ledger
from tests.chaos.conftest import Stage
from tests.chaos.support import Submissions, start_serve

BAD_SEGMENTS = ["%00", "..%2F..%2Fetc%2Fpasswd", "x" * 3000, "-1", "0001-01-01T00:00:00Z", "%27%3B--", "%E2%80%AE",
                "vvd_0_zzzzzzzz", "00000000-0000-0000-0000-000000000000"]  # fmt: skip
BAD_VALUES = ["0.5", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "-1", "1e309", "9" * 400, "", "\x00",
              "'; DROP TABLE video_requests; --", "true", "[]"]  # fmt: skip
BAD_BODIES: list[bytes] = [b"{", b"[]", b"null", b'{"prompt": 5}', b'{"user_id": "", "prompt": ""}',
                           b'{"user_id": "u", "prompt": "' + b"p" * 20000 + b'"}',
                           b'{"user_id": "u", "prompt": "ok", "duration_seconds": 1e309}',
                           b'{"user_id": "u", "prompt": "ok", "callback_url": "file:///etc/passwd"}']  # fmt: skip
EXTRA_PATHS = ["/media/requests/%00", "/media/..%2F..", "/monitoring", "/docs", "/metrics", "/healthz", "/readyz",
               "/api/v1/nowhere", "/%00"]  # fmt: skip


def sweep_requests(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, str], bytes | None]]:
    """(method, path, query, body) for every route of the OpenAPI document and the bad inputs."""
    out: list[tuple[str, str, dict[str, str], bytes | None]] = []
    for template, methods in spec["paths"].items():
        for method, operation in methods.items():
            method = method.upper()
            params = operation.get("parameters", [])
            query = [p["name"] for p in params if p.get("in") == "query"]
            paths = [re.sub(r"\{[^}]+\}", segment, template) for segment in BAD_SEGMENTS[:3]]
            for path in paths if "{" in template else [template]:
                bodies: list[bytes | None] = [*BAD_BODIES] if method in {"POST", "PUT", "PATCH"} else [None]
                for body in bodies:
                    out.append((method, path, {}, body))
            ok_path = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", template)
            for name in query:
                for value in BAD_VALUES:
                    out.append((method, ok_path, {name: value}, None))
            for segment in BAD_SEGMENTS[3:]:
                if "{" in template:
                    out.append((method, re.sub(r"\{[^}]+\}", segment, template), {}, None))
    out += [("GET", path, {}, None) for path in EXTRA_PATHS]
    return out


@pytest.mark.slow
async def test_no_input_makes_a_5xx_or_a_traceback(stage: Stage) -> None:
    """Every route answers every bad input (with a key, without one, with a broken one) below 500,
    API errors in the error shape, and no traceback reaches the logs; the ledger holds."""
    # A snapshot to answer guild stats from (without one they answer 503, an outage, not input).
    subprocess.run([sys.executable, "-m", "service.cli.main", "export"], env=stage.env, cwd=stage.root,
                   check=True, capture_output=True)  # fmt: skip
    serve = start_serve(stage.env, stage.root / "serve.log")
    answers: Counter[int] = Counter()
    server_errors: list[str] = []
    shapeless: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=serve.url, timeout=10) as client:
            spec = (await client.get("/openapi.json")).json()
            cases = sweep_requests(spec)
            credentials = [{}, {"Authorization": f"Bearer {stage.key}"}, {"Authorization": "Bearer rt_" + "x" * 5000},
                           {"Authorization": "Basic Zm9vOmJhcg=="}]  # fmt: skip
            limit = asyncio.Semaphore(8)

            async def one(
                method: str, path: str, query: dict[str, str], body: bytes | None, auth: dict[str, str]
            ) -> None:
                headers = {**auth, **({"Content-Type": "application/json"} if body is not None else {})}
                request = client.build_request(method, path, params=query, content=body, headers=headers)
                async with limit:
                    response = await client.send(request, stream=True)
                    try:
                        # A 200 from the event stream never ends: only answers that end are read.
                        streaming = response.status_code == 200 and path.endswith("/stream")
                        content = b"" if streaming else await response.aread()
                    finally:
                        await response.aclose()
                answers[response.status_code] += 1
                where = f"{method} {path[:80]} {query} -> {response.status_code}"
                if response.status_code >= 500:
                    server_errors.append(where)
                elif response.status_code >= 400 and path.startswith("/api/") and b'"error"' not in content:
                    shapeless.append(where)

            await asyncio.gather(*(one(*case, auth) for case in cases for auth in credentials))
    finally:
        serve.stop()
    taken = ledger.take(
        f"bad-input sweep: {sum(answers.values())} calls, answers {dict(sorted(answers.items()))}",
        database_url=stage.database_url,
        data_dir=stage.data_dir,
        logs=stage.logs(),
        submissions=Submissions(),
        key=stage.key,
        out=stage.ledger_log,
    )
    assert server_errors == []
    assert shapeless == []
    tracebacks = [log.name for log in stage.logs() if "Traceback" in log.read_text(errors="replace")]
    assert tracebacks == []
    taken.assert_holds()
