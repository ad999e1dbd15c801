"""The collector settings the long-running processes apply once started."""

from __future__ import annotations

import subprocess
import sys

from service.gc_tuning import YOUNG_GENERATION_THRESHOLD


def test_settle_heap_freezes_start_up_and_raises_the_young_threshold() -> None:
    """After settle_heap, start-up objects are frozen and young passes come every 10,000 allocations."""
    # In a child process: freezing this test process's heap would outlive the test.
    code = (
        "import gc, service.app\n"
        "from service.gc_tuning import settle_heap\n"
        "before = gc.get_threshold()\n"
        "settle_heap()\n"
        "print(gc.get_freeze_count(), *gc.get_threshold(), *before[1:])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    frozen, young, middle, old, middle_before, old_before = map(int, out.split())
    assert frozen > 10_000  # the app's imports, at least
    assert young == YOUNG_GENERATION_THRESHOLD
    assert (middle, old) == (middle_before, old_before)
