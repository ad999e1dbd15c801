"""Garbage-collector settings for the long-running processes (`serve`, `worker`).

CPython's cyclic collector makes a young-generation pass every 700 net container
allocations, and its full passes scan every tracked object, the ~150,000 created by
imports and start-up included. Handling a request allocates many short-lived
containers (validation models, span attributes, log event dicts), so with the
defaults the collector takes a visible share of each request's CPU. Once a process
has started, its heap is frozen (`gc.freeze`: those objects move to a permanent
generation no pass scans), and the young generation is collected every 10,000
allocations instead: still often enough that cycles are freed within a request or
two, at a fraction of the passes.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 10_000


def settle_heap() -> None:
    """Collect, freeze what start-up left, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
