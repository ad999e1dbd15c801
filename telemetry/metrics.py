"""Every Prometheus metric reeltrace exposes, declared once.

Names and labels are a contract with the dashboards in `grafana/` and the rules in
`prometheus/`; change them only together. Units are seconds. No label ever carries a
user, guild, prompt, request or trace ID (those go in exemplars, spans and logs).

Counters
    reeltrace_requests_created_total{pipeline}
    reeltrace_requests_finished_total{pipeline,status}        status: completed|failed|timeout
    reeltrace_stage_retries_total{pipeline,stage}
    reeltrace_external_calls_total{dependency,outcome}         outcome: success|error|rejected
    reeltrace_tracking_write_failures_total{operation}
    reeltrace_webhook_attempts_total{outcome}                  outcome: delivered|retrying|gave_up
    reeltrace_generation_uncertain_starts_total{action}        action: retried|failed
    reeltrace_generation_cost_usd_total{pipeline,model,outcome}        USD of billed generation attempts
    reeltrace_generation_billable_seconds_total{pipeline,model,outcome}
                                                   outcome: succeeded|failed|filtered
    reeltrace_generation_unpriced_total{pipeline,model}                billed attempts the price table cannot price
Histograms (with trace_id exemplars)
    reeltrace_request_duration_seconds{pipeline,status,aspect_ratio}   started -> terminal
    reeltrace_request_queue_seconds{pipeline}                          created -> started
    reeltrace_stage_duration_seconds{pipeline,stage,status}            one stage attempt
                                                   status: completed|retried|failed
    reeltrace_external_call_duration_seconds{dependency}
Gauges
    reeltrace_requests_in_flight{pipeline,stage}
    reeltrace_oldest_request_age_seconds{status}                       status: pending (since created)|generating (since started)
    reeltrace_circuit_breaker_state{dependency}                        0 closed, 1 half-open, 2 open
    reeltrace_tracking_journal_pending
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# No `<name>_created` sample beside every counter and histogram series: in the text
# format Prometheus stores each as a series of its own, nearly doubling what is kept,
# and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

# 0.1 s to 15 min for requests and stages, with 300 s (the latency SLO) an exact
# boundary; the sub-second buckets keep fast stages such as validation resolvable.
DURATION_BUCKETS = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0,
    90.0, 120.0, 180.0, 240.0, 300.0, 450.0, 600.0, 900.0,
)  # fmt: skip

# How a billed generation attempt ended, as the cost counters label it.
GENERATION_OUTCOMES = ("succeeded", "failed", "filtered")

# How a stage attempt ended, as the stage-duration histogram labels it.
STAGE_OUTCOMES = ("completed", "retried", "failed")
BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}


def current_exemplar() -> dict[str, str] | None:
    """`{"trace_id": <32 hex>}` for the active span, or None outside a sampled trace."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return None
    return {"trace_id": format(ctx.trace_id, "032x")}


class Metrics:
    """The metric families, bound to one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests_created = Counter(
            "reeltrace_requests_created", "Requests accepted.", ["pipeline"], registry=registry
        )
        self.requests_finished = Counter(
            "reeltrace_requests_finished",
            "Requests that reached a terminal status.",
            ["pipeline", "status"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "reeltrace_request_duration_seconds",
            "Time from started to terminal status.",
            ["pipeline", "status", "aspect_ratio"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.request_queue = Histogram(
            "reeltrace_request_queue_seconds",
            "Time from created to started (queueing).",
            ["pipeline"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.stage_duration = Histogram(
            "reeltrace_stage_duration_seconds",
            "Duration of one stage attempt.",
            ["pipeline", "stage", "status"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.stage_retries = Counter(
            "reeltrace_stage_retries",
            "Stage attempts that were retried.",
            ["pipeline", "stage"],
            registry=registry,
        )
        self.requests_in_flight = Gauge(
            "reeltrace_requests_in_flight",
            "Requests being worked on, by the stage they are in.",
            ["pipeline", "stage"],
            registry=registry,
        )
        self.oldest_request_age = Gauge(
            "reeltrace_oldest_request_age_seconds",
            "Age of the oldest request in a non-terminal status.",
            ["status"],
            registry=registry,
        )
        self.circuit_breaker_state = Gauge(
            "reeltrace_circuit_breaker_state",
            "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.",
            ["dependency"],
            registry=registry,
        )
        self.external_calls = Counter(
            "reeltrace_external_calls",
            "Calls to external dependencies, by outcome.",
            ["dependency", "outcome"],
            registry=registry,
        )
        self.external_call_duration = Histogram(
            "reeltrace_external_call_duration_seconds",
            "Duration of calls to external dependencies.",
            ["dependency"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.webhook_attempts = Counter(
            "reeltrace_webhook_attempts",
            "Callback delivery attempts, by what the delivery became: delivered, retrying, gave_up.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("delivered", "retrying", "gave_up"):
            self.webhook_attempts.labels(outcome=outcome)
        self.uncertain_starts = Counter(
            "reeltrace_generation_uncertain_starts",
            "Generation starts a crashed run left uncertain (intended, never recorded), by what was done.",
            ["action"],
            registry=registry,
        )
        for action in ("retried", "failed"):
            self.uncertain_starts.labels(action=action)
        self.tracking_write_failures = Counter(
            "reeltrace_tracking_write_failures",
            "Tracking writes that could not reach PostgreSQL and went to the journal.",
            ["operation"],
            registry=registry,
        )
        self.tracking_journal_pending = Gauge(
            "reeltrace_tracking_journal_pending",
            "Tracking writes waiting in the local journal for replay.",
            registry=registry,
        )
        # Models come from configuration (REELTRACE_VEO_MODEL), never from requests.
        self.generation_cost = Counter(
            "reeltrace_generation_cost_usd",
            "USD billed for generation attempts, priced from the price table.",
            ["pipeline", "model", "outcome"],
            registry=registry,
        )
        self.generation_billable_seconds = Counter(
            "reeltrace_generation_billable_seconds",
            "Output seconds billed for generation attempts.",
            ["pipeline", "model", "outcome"],
            registry=registry,
        )
        self.generation_unpriced = Counter(
            "reeltrace_generation_unpriced",
            "Billed generation attempts whose model the price table does not price.",
            ["pipeline", "model"],
            registry=registry,
        )
        # reeltrace_oldest_request_age_seconds has no series until a worker's watchdog
        # measures it: an API-only process would otherwise report a permanent, false 0.
        self.tracking_journal_pending.set(0)

    def declare_pipelines(
        self,
        pipelines: Iterable[str],
        terminal_statuses: Iterable[str],
        aspect_ratios: Iterable[str] = (),
    ) -> None:
        """Create each pipeline's request series at 0, before anything is counted.

        A labelled series appears on its first increment, and rate()/increase() cannot
        see what a series counted before its first scrape: without this, the first
        failures after a start (a whole burst, within one scrape interval) never reach
        the failure ratio, and so never the availability SLO. The request histograms
        are declared for the same reason: a latency alert needs the buckets' earlier
        (zero) values to see the first slow requests.
        """
        statuses = list(terminal_statuses)
        ratios = list(aspect_ratios)
        for pipeline in pipelines:
            self.requests_created.labels(pipeline=pipeline)
            self.request_queue.labels(pipeline=pipeline)
            for status in statuses:
                self.requests_finished.labels(pipeline=pipeline, status=status)
                for ratio in ratios:
                    self.request_duration.labels(pipeline=pipeline, status=status, aspect_ratio=ratio)

    def declare_costs(self, pipelines: Iterable[str], model: str) -> None:
        """Create the cost series of the configured model at 0 (see declare_pipelines)."""
        for pipeline in pipelines:
            self.generation_unpriced.labels(pipeline=pipeline, model=model)
            for outcome in GENERATION_OUTCOMES:
                self.generation_cost.labels(pipeline=pipeline, model=model, outcome=outcome)
                self.generation_billable_seconds.labels(pipeline=pipeline, model=model, outcome=outcome)

    def declare_stages(self, pipeline: str, stages: Iterable[str]) -> None:
        """Create a pipeline's stage series at 0, where its stages run (see declare_pipelines)."""
        for stage in stages:
            self.stage_retries.labels(pipeline=pipeline, stage=stage)
            self.requests_in_flight.labels(pipeline=pipeline, stage=stage).set(0)
            for outcome in STAGE_OUTCOMES:
                self.stage_duration.labels(pipeline=pipeline, stage=stage, status=outcome)


_lock = threading.Lock()
_metrics: Metrics | None = None


def get_metrics() -> Metrics:
    """The process-wide metrics, created on first use (not at import)."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = Metrics(CollectorRegistry(auto_describe=True))
        return _metrics
