"""The dispatcher's lag histogram takes a pass's lags at once, and a scrape reads it exactly as it
would read prometheus_client's own ``Histogram`` fed the same values one by one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from keeperhub_scheduler.telemetry.metrics import LAG_BUCKETS, BatchHistogram

NAME = "lag_seconds"
# Values on the bounds themselves (a bucket is "less than or equal"), between them, beyond all.
LAGS = st.one_of(
    st.sampled_from([0.0, *[float(bound) for bound in LAG_BUCKETS], 5000.0]),
    st.floats(min_value=0, max_value=10_000, allow_nan=False),
)


def exposition(registry: CollectorRegistry) -> list[str]:
    """The scrape's sample lines (without ``_created``, which only the library's own has)."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if line and "_created" not in line]


@given(st.lists(st.lists(LAGS, max_size=30), max_size=5))
def test_a_scrape_reads_what_histogram_would_for_the_same_values(
    passes: list[list[float]],
) -> None:
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = BatchHistogram(NAME, "lag", LAG_BUCKETS, ours_registry)
    theirs = Histogram(NAME, "lag", buckets=LAG_BUCKETS, registry=theirs_registry)

    for lags in passes:
        ours.observe_many(lags)
        for lag in lags:
            theirs.observe(lag)

    assert exposition(ours_registry) == exposition(theirs_registry)


def test_an_empty_histogram_has_every_bucket_at_zero() -> None:
    registry = CollectorRegistry()
    BatchHistogram(NAME, "lag", (0.5, 1), registry)
    assert exposition(registry) == [
        "# HELP lag_seconds lag",
        "# TYPE lag_seconds histogram",
        'lag_seconds_bucket{le="0.5"} 0.0',
        'lag_seconds_bucket{le="1.0"} 0.0',
        'lag_seconds_bucket{le="+Inf"} 0.0',
        "lag_seconds_count 0.0",
        "lag_seconds_sum 0.0",
    ]
