"""The one backoff of every retry loop: the waits the loops had each written out by hand."""

from __future__ import annotations

from keeperhub_scheduler.backoff import Backoff


def test_the_waits_double_from_the_first_up_to_the_ceiling_and_start_over_after_a_reset() -> None:
    relay = Backoff(first=0.5, longest=30.0)  # the dispatcher's: 0.5 * 2 ** (failures - 1)
    assert [relay.next() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert relay.failures == 9
    relay.reset()
    assert (relay.failures, relay.next()) == (0, 0.5)

    receive = Backoff(first=1.0, longest=30.0)  # the receive loop's: 0.5 * 2 ** failures
    assert [receive.next() for _ in range(6)] == [min(30.0, 0.5 * 2**n) for n in range(1, 7)]

    record = Backoff(first=0.5, longest=5.0)  # writing an outcome through an outage
    assert [record.next() for _ in range(6)] == [0.5, 1, 2, 4, 5, 5]


def test_a_long_outage_never_overflows() -> None:
    backoff = Backoff(first=1.0, longest=30.0)
    assert [backoff.next() for _ in range(5000)][-1] == 30.0
