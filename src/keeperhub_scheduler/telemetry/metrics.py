"""Prometheus metrics, one registry per process, served on ``/metrics``.

Names start with ``keeperhub_scheduler_``; docs/runbook.md lists the alerts built on them.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)
PREFIX = "keeperhub_scheduler_"
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class BatchHistogram:
    """A histogram observed a batch of values at a time, exposed as ``Histogram`` exposes one
    (``_bucket`` per ``le``, ``_count``, ``_sum``). The dispatcher's lag is one value per relayed
    run, thousands a second: ``Histogram.observe`` per value (a lock and a scan of the bounds
    each) cost more than a bisect over the batch."""

    def __init__(
        self, name: str, documentation: str, buckets: Iterable[float], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = (*sorted(float(bound) for bound in buckets), math.inf)
        self._counts = [0] * len(self._bounds)  # per bucket, not cumulative
        self._sum = 0.0
        self._lock = threading.Lock()  # a scrape may read from another thread
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        bounds, counts = self._bounds, self._counts
        with self._lock:
            total = self._sum  # added to value by value, as ``observe`` would: the same sum
            for value in values:
                counts[bisect_left(bounds, value)] += 1  # le: a value on a bound counts in it
                total += value
            self._sum = total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip(self._bounds, counts, strict=True):
            cumulative += count
            buckets.append((_le(bound), float(cumulative)))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation)


def _le(bound: float) -> str:
    """A bucket's bound as prometheus_client's own histograms write it (``1.0``, ``+Inf``)."""
    return "+Inf" if bound == math.inf else repr(bound)


# --- dispatcher ---------------------------------------------------------------------------------
OCCURRENCES_DECIDED = Counter(
    PREFIX + "occurrences_decided_total",
    "Occurrences the dispatcher decided, by outcome (fired or skipped)",
    ["outcome"],
    registry=REGISTRY,
)
RUNS_RELAYED = Counter(
    PREFIX + "runs_relayed_total", "Runs handed to the transport", registry=REGISTRY
)
RELAY_FAILURES = Counter(
    PREFIX + "relay_failures_total",
    "Runs the transport refused (they stay pending and are retried)",
    registry=REGISTRY,
)
RUNS_SWEPT = Counter(
    PREFIX + "runs_swept_total",
    "Runs put back in the outbox because their message was lost",
    registry=REGISTRY,
)


DISPATCH_LAG = BatchHistogram(
    PREFIX + "dispatch_lag_seconds",
    "Enqueued minus scheduled_for, per relayed run",
    buckets=LAG_BUCKETS,
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    PREFIX + "outbox_pending", "Runs decided but not yet enqueued", registry=REGISTRY
)
CLAIM_DURATION = Histogram(
    PREFIX + "claim_duration_seconds",
    "Time of one claim transaction",
    buckets=CALL_BUCKETS,
    registry=REGISTRY,
)
INVALID_SCHEDULES = Counter(
    PREFIX + "invalid_schedules_total",
    "Schedules parked because their timing cannot be read",
    registry=REGISTRY,
)

# --- both: why an occurrence or a run did not execute -------------------------------------------
SKIPPED = Counter(
    PREFIX + "skipped_total",
    "Occurrences (dispatcher) and runs (executor) not executed, by reason",
    ["stage", "reason"],
    registry=REGISTRY,
)

# --- executor -----------------------------------------------------------------------------------
MESSAGES_RECEIVED = Counter(
    PREFIX + "messages_received_total", "Messages received", registry=REGISTRY
)
RUNS_FINISHED = Counter(
    PREFIX + "runs_finished_total",
    "Runs the executor finished, by status (succeeded, failed, dead)",
    ["status"],
    registry=REGISTRY,
)
RUNS_RETRIED = Counter(
    PREFIX + "runs_retried_total",
    "Attempts that failed and were scheduled again",
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    PREFIX + "dead_lettered_total",
    "Messages moved to the dead-letter queue, by kind of reason",
    ["reason"],
    registry=REGISTRY,
)
DUPLICATES_DROPPED = Counter(
    PREFIX + "duplicates_dropped_total",
    "Deliveries of runs already finished or running elsewhere, acknowledged and dropped",
    registry=REGISTRY,
)
CALL_DURATION = Histogram(
    PREFIX + "keeperhub_call_seconds",
    "Duration of POST /api/workflow/{id}/execute, by outcome",
    ["outcome"],
    buckets=CALL_BUCKETS,
    registry=REGISTRY,
)
END_TO_END_LAG = Histogram(
    PREFIX + "end_to_end_lag_seconds",
    "From scheduled_for to KeeperHub's answer",
    buckets=LAG_BUCKETS,
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(PREFIX + "executions_in_flight", "KeeperHub calls in progress", registry=REGISTRY)

# --- both: the SQS queue, read when /metrics is scraped -----------------------------------------
QUEUE_MESSAGES = Gauge(
    PREFIX + "queue_messages",
    "Messages in the SQS queue (main) and its dead-letter queue (dlq), by state (visible,"
    " in_flight), as SQS counted them at the last scrape",
    ["queue", "state"],
    registry=REGISTRY,
)
QUEUE_DEPTH_FAILURES = Counter(
    PREFIX + "queue_depth_failures_total",
    "Scrapes at which the queue's depth could not be read (the gauge is then left empty)",
    registry=REGISTRY,
)


def render() -> bytes:
    return generate_latest(REGISTRY)


_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: Any, *values: str) -> Any:
    """A metric's child for these label values, looked up once: ``labels`` takes a lock and
    checks its arguments on every call, per run on the hot path. (A few label sets at most.)"""
    key = (id(metric), values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*values)
    return child
