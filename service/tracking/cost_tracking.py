"""Recording what generation attempts cost: the request's totals, the event, the metrics.

Each billed attempt is one write carrying the request's new totals (absolute values,
so a replayed write changes nothing twice) and its `cost_recorded` event. An attempt
whose model the price table does not price leaves the request's cost NULL for good,
and is flagged: a warning event, a warning log line and
reeltrace_generation_unpriced_total, never a silent zero.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

import structlog

from service.cost.pricing import attempt_cost
from service.request_states import Severity
from service.tracking.fence import fence_of
from service.tracking.run_writes import RunWrites
from service.tracking.write_values import RecordCost

log = structlog.get_logger("reeltrace.tracker")


@dataclass(frozen=True, slots=True)
class Spend:
    """A request's cost so far: None before anything is billed, and for good once an
    unpriced attempt was."""

    cost_usd: Decimal | None = None
    billable_seconds: Decimal = Decimal(0)
    billed: bool = False

    def plus(self, seconds: Decimal, cost: Decimal | None) -> Spend:
        unpriced_before = self.cost_usd is None and self.billed
        total = None if cost is None or unpriced_before else (self.cost_usd or Decimal(0)) + cost
        return Spend(total, self.billable_seconds + seconds, billed=True)


@dataclass(frozen=True, slots=True)
class BilledAttempt:
    pipeline: str
    model: str
    outcome: str
    """succeeded | failed | filtered"""
    seconds: Decimal
    usd_per_second: Decimal | None
    price_version: str | None
    attempt: int
    operation_name: str | None
    stage: str = "video_generation"
    per_call: bool = False
    """A call priced per call (the lesson script's Gemini call): `usd_per_second` is its price."""


class CostTracking:
    """A request's cost: each billed attempt's write, and the cost metrics."""

    def __init__(self, runs: RunWrites) -> None:
        self.runs = runs
        self.writer = runs.writer

    async def record_cost(self, request_id: uuid.UUID, spent: Spend, billed: BilledAttempt) -> Spend:
        """Add a billed attempt to the request's cost; returns the new totals."""
        if billed.per_call:
            cost = billed.usd_per_second
        else:
            cost = attempt_cost(billed.seconds, billed.usd_per_second)
        total = spent.plus(billed.seconds, cost)
        priced = cost is not None
        data = {
            "model": billed.model,
            "outcome": billed.outcome,
            "attempt": billed.attempt,
            "operation_name": billed.operation_name,
            "billable_seconds": float(billed.seconds),
            ("usd_per_call" if billed.per_call else "usd_per_second"): None
            if billed.usd_per_second is None
            else float(billed.usd_per_second),
            "attempt_cost_usd": None if cost is None else float(cost),
            "cost_usd": None if total.cost_usd is None else float(total.cost_usd),
            "total_billable_seconds": float(total.billable_seconds),
            "price_version": billed.price_version,
            "priced": priced,
        }
        what = f"a {billed.model} call" if billed.per_call else f"{billed.seconds:g} s"
        message = (
            f"{what} billed: ${cost:.4f}"
            if priced
            else f"{what} billed, but the price table has no price for {billed.model}"
        )
        write = RecordCost(
            request_id=request_id,
            cost_usd=total.cost_usd,
            billable_seconds=total.billable_seconds,
            fence=fence_of(request_id),
            event=self.writer.event(
                request_id,
                "cost_recorded",
                self.writer.clock(),
                severity=Severity.INFO if priced else Severity.WARNING,
                stage=billed.stage,
                message=message,
                data=data,
            ),
        )
        await self.runs.track(write, "cost", lambda _: None, request_id=str(request_id))
        labels = {"pipeline": billed.pipeline, "model": billed.model}
        self.writer.metrics.generation_billable_seconds.labels(**labels, outcome=billed.outcome).inc(
            float(billed.seconds)
        )
        if cost is not None:
            self.writer.metrics.generation_cost.labels(**labels, outcome=billed.outcome).inc(float(cost))
            log.info("cost_recorded", request_id=str(request_id), **data)
        else:
            self.writer.metrics.generation_unpriced.labels(**labels).inc()
            log.warning("cost_unpriced", request_id=str(request_id), **data)
        return total
