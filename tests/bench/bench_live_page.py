"""Benchmark: the monitoring page in chromium with 1,000 active requests.

Run: `python -m pytest tests/bench/bench_live_page.py -s` (not part of the suite). A real
`reeltrace serve --no-worker` (keys not required) on a PostgreSQL with durable
commits holds 1,000 pending requests submitted through the API. Prints:

- first paint: from navigation start to the first active row in the DOM (a
  MutationObserver in the page notes the moment), best and median of ROUNDS loads;
- change to DOM: 200 status changes (100 requests started, then completed) made
  by the real tracker in this process, paced at 100 changes/s; for each, the time
  from its commit returning to the page's DOM showing the row with the new status
  (same machine, same clock), as p50 / p99 / max.

Targets: first paint < 500 ms, change-to-DOM p99 < 1 s.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from playwright.sync_api import Page

from service.runtime import Runtime
from service.settings import Settings
from tests.e2e.serve import serve_env, start_serve_on_free_port, submit_all
from tests.support.browser import launched
from tests.support.pg import PgCluster

ACTIVE = 1000
CHANGED_REQUESTS = 100  # two changes each: 200 changes
PACE_SECONDS = 0.01  # 100 changes/s
ROUNDS = 5

# Notes when the first active row appears, and when each (request, status) first shows.
OBSERVER = """
window.__firstRow = null; window.__seen = {};
new MutationObserver((records) => {
  const now = Date.now();
  for (const r of records) for (const n of r.addedNodes) {
    if (!(n instanceof HTMLElement) || !n.classList.contains('row')) continue;
    if (window.__firstRow === null && n.parentElement && n.parentElement.id === 'active')
      window.__firstRow = performance.now();
    const key = n.dataset.id + ':' + n.dataset.status;
    if (!(key in window.__seen)) window.__seen[key] = now;
  }
}).observe(document, {childList: true, subtree: true});
"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _changes(url: str, settings: Settings, ids: list[uuid.UUID]) -> dict[str, float]:
    """Start then complete each request, paced; the wall time each commit returned."""
    runtime = Runtime.build(settings, url, source_service="bench")
    committed: dict[str, float] = {}
    try:
        for rid in ids:
            await runtime.tracker.start_request(rid)
            committed[f"{rid}:generating"] = time.time() * 1000
            await asyncio.sleep(PACE_SECONDS)
        for rid in ids:
            await runtime.tracker.complete_request(rid, ["http://127.0.0.1/video.mp4"])
            committed[f"{rid}:completed"] = time.time() * 1000
            await asyncio.sleep(PACE_SECONDS)
    finally:
        await runtime.close()
    return committed


def _first_paint(page: Page, url: str) -> float:
    page.goto(url + "/monitoring")
    page.wait_for_function("window.__firstRow !== null")
    return float(page.evaluate("window.__firstRow"))


def test_live_page() -> None:
    """Prints first paint with 1,000 active requests and change-to-DOM p50/p99 over 200 changes."""
    root = Path(tempfile.mkdtemp(prefix="reeltrace-bench-page-"))
    cluster = PgCluster(root, durable=True)
    cluster.create_template()
    database = cluster.new_database()
    url = cluster.url(database)
    env = serve_env(
        {
            "DATABASE_URL": url,
            "REELTRACE_DATA_DIR": str(root / "data"),
            "REELTRACE_API_KEYS_REQUIRED": "false",
            "REELTRACE_RATE_LIMIT": "100000/minute",
            "REELTRACE_LOG_LEVEL": "warning",
            "OTEL_TRACES_EXPORTER": "none",
        }
    )
    serve = start_serve_on_free_port(env, root / "serve.log", worker=False)
    try:
        ids = [uuid.uuid4() for _ in range(ACTIVE)]
        submit_all(serve.url, ids)
        with launched() as browser:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(OBSERVER)
            page = context.new_page()
            paints = [_first_paint(page, serve.url) for _ in range(ROUNDS)]
            rows = page.locator("#active .row").count()
            print(
                f"\nfirst paint with {ACTIVE} active requests ({rows} rows rendered): "
                f"best {min(paints):.0f} ms, median {statistics.median(paints):.0f} ms over {ROUNDS} loads"
            )
            page.wait_for_selector("#live[data-state=live]")
            # The newest requests are the ones on screen (newest first).
            newest = httpx.get(f"{serve.url}/api/v1/monitoring/requests?limit={CHANGED_REQUESTS}", timeout=30)
            changed = [uuid.UUID(item["id"]) for item in newest.json()["items"]]
            settings = Settings(database_url=url, data_dir=root / "bench-data")
            # Playwright's sync API holds this thread's event loop: the writes run in another.
            with ThreadPoolExecutor(1) as pool:
                committed = pool.submit(asyncio.run, _changes(url, settings, changed)).result()
            page.wait_for_function(
                f"Object.keys(window.__seen).filter(k => k.endsWith(':completed')).length >= {CHANGED_REQUESTS}",
                timeout=60_000,
            )
            seen: dict[str, float] = page.evaluate("window.__seen")
            delays = [seen[key] - at for key, at in committed.items() if key in seen]
            print(
                f"change committed -> DOM over {len(delays)} changes at {1 / PACE_SECONDS:.0f}/s: "
                f"p50 {_pct(delays, 0.5):.0f} ms, p99 {_pct(delays, 0.99):.0f} ms, max {max(delays):.0f} ms"
            )
            assert len(delays) == 2 * CHANGED_REQUESTS
    finally:
        serve.stop()
        cluster.server.cleanup()
