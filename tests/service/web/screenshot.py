"""Makes docs/monitoring.png: the page in chromium, with requests in every state.

Run: `python -m tests.service.web.screenshot` (a few seconds past the embedded
server's start). A real `reeltrace serve` on the embedded default runs the simulated
backend slowly enough that some requests are mid-pipeline, some finished and one
failed when the picture is taken, as an operator would see it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tests.e2e.serve import serve_env, start_serve_on_free_port
from tests.service.web.server import FAST, PageServer
from tests.support.browser import launched, sign_in, watched_page

OUT = Path(__file__).resolve().parents[3] / "docs" / "monitoring.png"

SETTINGS = {
    **FAST,
    "REELTRACE_SIM_LATENCY_SECONDS": "9",
    "REELTRACE_SIM_JITTER_SECONDS": "6",
    "REELTRACE_SIM_FAILURE_RATE": "0.15",
    "REELTRACE_SIM_SEED": "7",
    "REELTRACE_MAX_RETRIES": "0",
}
LESSONS = ["photosynthesis", "plate tectonics", "the water cycle"]


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="reeltrace-shot-"))
    env = serve_env({**SETTINGS, "REELTRACE_DATA_DIR": str(workdir / "data")})
    serve = start_serve_on_free_port(env, workdir / "serve.log", within=120)
    try:
        server = PageServer(serve, env, read_key="", admin_key="")
        server.read_key = server.create_key("read")
        server.admin_key = server.create_key("admin")
        for index in range(14):
            extra = {"pipeline": "lesson", "topic": LESSONS[index % 3]} if index % 4 == 0 else {}
            server.submit(index, **extra)
            time.sleep(0.9)
        with launched() as browser:
            watched = watched_page(browser)
            page = sign_in(watched, server.url, server.read_key)
            page.wait_for_selector("#live[data-state=live]")
            page.wait_for_selector("#chart-outcomes .uplot")
            page.wait_for_timeout(1500)
            OUT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(OUT), full_page=True)
            watched.close()
        print(OUT)  # noqa: T201  # the one line this script says
    finally:
        serve.stop()


if __name__ == "__main__":
    main()
