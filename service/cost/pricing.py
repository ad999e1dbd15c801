"""Pricing requests: the estimate at submit, and what each billed attempt costs.

A request is priced once, at submit, from the table then in force: its unit price
(USD per output second of the configured model, at its resolution and audio) and the
table's version are stored on it, and every billed attempt is charged at that unit
price. A later price table therefore reprices only the requests submitted after it.

What Vertex AI bills: output seconds of a finished operation. reeltrace counts every
operation that finished (succeeded, filtered by the safety filters, or failed after it
ran) at the seconds it was asked for; a start refused outright (429, invalid request)
or an operation given up at the timeout created no billable output. Counting failed
operations is the cautious reading: budgets never under-count.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from service.backends.base import OperationState, OperationStatus
from service.cost.prices import PriceTable

CENTS = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class Quote:
    usd_per_second: Decimal | None
    """None: the table does not price this model at this tier."""
    estimated_cost_usd: Decimal | None
    version: str


def billable_seconds(status: OperationStatus, duration_seconds: int, sample_count: int) -> Decimal:
    """Output seconds a finished operation bills (0 while it runs)."""
    if status.state == OperationState.RUNNING:
        return Decimal(0)
    if status.state == OperationState.SUCCEEDED:
        samples = len(status.videos) + status.filtered_count
    elif status.state == OperationState.FILTERED:
        samples = status.filtered_count or sample_count
    else:
        samples = sample_count
    return Decimal(duration_seconds * max(samples, 1))


class Pricing:
    """The price table and the model it prices requests for."""

    def __init__(self, prices: PriceTable, model: str) -> None:
        self.prices = prices
        self.model = model

    @property
    def version(self) -> str:
        return self.prices.version

    def quote(self, duration_seconds: int, resolution: str, audio: bool, sample_count: int = 1) -> Quote:
        unit = self.prices.per_second(self.model, resolution, audio)
        estimate = None if unit is None else (unit * duration_seconds * max(sample_count, 1)).quantize(CENTS)
        return Quote(unit, estimate, self.prices.version)


def attempt_cost(seconds: Decimal, usd_per_second: Decimal | None) -> Decimal | None:
    return None if usd_per_second is None else (seconds * usd_per_second).quantize(CENTS)
