"""Benchmark: how long a change takes to reach another API replica's event stream.

Run: `python -m pytest tests/bench/bench_stream.py -s` (not part of the suite). Two
real uvicorn servers share one PostgreSQL; a client holds the event stream of one
open and submits through the other, one request at a time, timing each from the POST
to its event on the stream. Prints the p50, p95 and largest delay over
BENCH_STREAM_SUBMISSIONS (default 50). The suite checks that every change arrives,
in order (tests/service/api/test_stream.py); this prints how fast.
"""

from __future__ import annotations

import os
import statistics
import time

from service.auth.keys import create_key
from service.auth.repository import ApiKeyRepository
from service.runtime import Runtime
from service.settings import Settings
from tests.service.api.live import live_server
from tests.service.api.sse import open_stream
from tests.service.api.test_stream import submit

SUBMISSIONS = int(os.environ.get("BENCH_STREAM_SUBMISSIONS", "50"))


async def test_bench_cross_replica_stream_delay(settings: Settings, runtime: Runtime) -> None:
    """Prints the delay from a POST on one replica to its event on another replica's stream."""
    issued = await create_key(ApiKeyRepository(runtime.database), "bench", ["admin"])
    headers = {"Authorization": f"Bearer {issued.key}"}
    delays: list[float] = []
    with live_server(settings) as writer, live_server(settings) as reader:
        async with open_stream(reader.url, headers) as stream:
            await submit(writer, headers, user_id="warm-up")
            await stream.next_data(within=10)
            for i in range(SUBMISSIONS):
                started = time.perf_counter()
                accepted = await submit(writer, headers, user_id=f"bench-{i}")
                got = await stream.next_data(within=10)
                delays.append(time.perf_counter() - started)
                assert got["request_id"] == accepted["id"]
    ms = sorted(d * 1000 for d in delays)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(
        f"\ncross-replica stream delay over {len(ms)} submissions: "
        f"p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms"
    )
