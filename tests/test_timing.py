"""Timing: interval schedules, bounds, jitter and the plan key, without a database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest

from keeperhub_scheduler.errors import InvalidScheduleError
from keeperhub_scheduler.timing import (
    MAX_INTERVAL_SECONDS,
    Timing,
    cached_timing,
    due_occurrences,
    jitter_offset,
    next_due,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


# --- interval schedules -----------------------------------------------------------------------
def test_an_interval_counts_from_its_anchor_not_from_the_clock_face() -> None:
    anchor = datetime(2026, 3, 1, 9, 7, 13, 250_000, tzinfo=UTC)
    every_55_minutes = Timing.of(None, interval_seconds=55 * 60, anchor_at=anchor)
    assert every_55_minutes.next_n(anchor, 3) == [
        anchor + timedelta(minutes=55),
        anchor + timedelta(minutes=110),
        anchor + timedelta(minutes=165),
    ]
    # Strictly after: an instant exactly on an occurrence gives the next one.
    assert every_55_minutes.next_after(anchor + timedelta(minutes=55)) == anchor + timedelta(
        minutes=110
    )
    # Before the anchor the same grid extends backwards.
    assert every_55_minutes.next_after(anchor - timedelta(hours=1)) == anchor - timedelta(
        minutes=55
    )
    assert every_55_minutes.cron_expression == "@every 3300s"


def test_an_interval_without_anchor_counts_from_the_unix_epoch() -> None:
    every_7s = Timing.of(None, interval_seconds=7)
    after = datetime(2026, 3, 1, tzinfo=UTC)
    occurrence = every_7s.next_after(after)
    assert occurrence is not None
    assert (occurrence - datetime(1970, 1, 1, tzinfo=UTC)) % timedelta(seconds=7) == timedelta(0)
    assert timedelta(0) < occurrence - after <= timedelta(seconds=7)


@pytest.mark.parametrize("every", [1, 3, 86_399, MAX_INTERVAL_SECONDS])
def test_an_interval_stays_exact_to_the_microsecond_over_a_century(every: int) -> None:
    anchor = datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC)  # one microsecond past the hour
    timing = Timing.of(None, interval_seconds=every, anchor_at=anchor)
    far = datetime(2099, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    occurrence = timing.next_after(far)
    assert occurrence is not None
    assert occurrence.microsecond == 1
    steps, remainder = divmod(occurrence - anchor, timedelta(seconds=every))
    assert remainder == timedelta(0)
    assert occurrence - timedelta(seconds=every) <= far < occurrence
    # Walking step by step agrees with jumping there.
    start = far - 5 * timedelta(seconds=every)
    walked = timing.next_n(start, 6)
    assert walked[-1] - walked[0] == 5 * timedelta(seconds=every)
    assert occurrence in walked
    assert steps > 0


@pytest.mark.parametrize("seconds", [0, -5, MAX_INTERVAL_SECONDS + 1])
def test_an_interval_out_of_range_is_rejected(seconds: int) -> None:
    with pytest.raises(InvalidScheduleError, match="out of range"):
        Timing.of(None, interval_seconds=seconds)


def test_a_naive_anchor_or_bound_is_rejected() -> None:
    naive = datetime(2026, 1, 1)  # naive on purpose
    for field in ("anchor_at", "start_at", "end_at"):
        with pytest.raises(InvalidScheduleError, match=field):
            Timing.of(None, interval_seconds=60, **{field: naive})


# --- bounds -----------------------------------------------------------------------------------
def test_start_at_is_the_first_possible_occurrence_inclusive() -> None:
    every_minute = Timing.of("* * * * *", start_at=T0 + timedelta(minutes=10))
    assert every_minute.next_after(T0) == T0 + timedelta(minutes=10)
    off_grid = Timing.of("* * * * *", start_at=T0 + timedelta(minutes=10, seconds=1))
    assert off_grid.next_after(T0) == T0 + timedelta(minutes=11)


def test_end_at_is_the_last_possible_occurrence_inclusive() -> None:
    every_minute = Timing.of("* * * * *", end_at=T0 + timedelta(minutes=2))
    assert every_minute.next_n(T0 - SECOND, 10) == [
        T0,
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=2),
    ]
    assert every_minute.next_after(T0 + timedelta(minutes=2)) is None


def test_bounds_apply_to_intervals_too() -> None:
    bounded = Timing.of(
        None,
        interval_seconds=10,
        anchor_at=T0,
        start_at=T0 + timedelta(seconds=15),
        end_at=T0 + timedelta(seconds=40),
    )
    assert bounded.next_n(T0 - timedelta(days=1), 10) == [
        T0 + timedelta(seconds=20),
        T0 + timedelta(seconds=30),
        T0 + timedelta(seconds=40),
    ]


def test_end_before_start_is_rejected() -> None:
    with pytest.raises(InvalidScheduleError, match="end_at is before start_at"):
        Timing.of("* * * * *", start_at=T0, end_at=T0 - SECOND)


# --- jitter -----------------------------------------------------------------------------------
def test_jitter_is_fixed_per_schedule_and_spread_between_schedules() -> None:
    following = T0 + timedelta(hours=1)
    offsets = {jitter_offset(f"schedule-{n}", 600, T0, following) for n in range(200)}
    assert len(offsets) > 150  # spread, not clumped
    assert all(timedelta(0) <= offset < timedelta(seconds=600) for offset in offsets)
    assert jitter_offset("schedule-1", 600, T0, following) == jitter_offset(
        "schedule-1", 600, T0 + timedelta(days=3), following + timedelta(days=3)
    )


def test_jitter_never_reaches_past_half_the_gap_to_the_next_occurrence() -> None:
    for n in range(200):
        offset = jitter_offset(f"schedule-{n}", 3600, T0, T0 + timedelta(seconds=10))
        assert offset <= timedelta(seconds=5)
    assert jitter_offset("x", 0, T0, T0 + SECOND) == timedelta(0)


def test_due_instants_keep_the_order_of_their_occurrences() -> None:
    timing = Timing.of("*/10 * * * * *")
    pairs = list(islice(due_occurrences(timing, "busy", 3600, T0), 50))
    due = [due_at for _, due_at in pairs]
    assert due == sorted(due)
    assert all(
        occurrence <= due_at < next_occ for (occurrence, due_at), (next_occ, _) in pairwise(pairs)
    )
    assert next_due(timing, "busy", 3600, T0) == pairs[0]


def test_next_due_is_none_once_a_schedule_has_ended() -> None:
    ended = Timing.of("* * * * *", end_at=T0)
    assert next_due(ended, "s", 0, T0) is None


# --- plan key ---------------------------------------------------------------------------------
BASE = Timing.of(
    "0 9 * * 1-5",
    "Europe/Berlin",
    start_at=T0,
    end_at=T0 + timedelta(days=365),
)
CHANGES = {
    "cron_expression": {"cron_expression": "0 10 * * 1-5"},
    "timezone": {"timezone": "Europe/Paris"},
    "interval_seconds": {"interval_seconds": 3600, "cron_expression": "@every 3600s"},
    "anchor_at": {"anchor_at": T0},
    "start_at": {"start_at": T0 + SECOND},
    "end_at": {"end_at": T0 + timedelta(days=366)},
}


@pytest.mark.parametrize("field", list(CHANGES))
def test_the_plan_key_changes_with_each_timing_field(field: str) -> None:
    changed = dataclasses.replace(BASE, **CHANGES[field])  # type: ignore[arg-type]
    assert changed.plan_key(0) != BASE.plan_key(0)


def test_the_plan_key_changes_with_jitter_and_is_stable_otherwise() -> None:
    assert BASE.plan_key(0) != BASE.plan_key(30)
    same = Timing.of("0 9 * * 1-5", "Europe/Berlin", start_at=T0, end_at=T0 + timedelta(days=365))
    assert same.plan_key(0) == BASE.plan_key(0)
    # The same instants written in another zone are the same plan.
    berlin = T0.astimezone(ZoneInfo("Europe/Berlin"))
    assert dataclasses.replace(BASE, start_at=berlin).plan_key(0) == BASE.plan_key(0)


# --- the caches the dispatcher relies on -------------------------------------------------------
def test_cached_occurrences_equal_the_search_itself() -> None:
    for timing in (
        Timing.of("30 2 * * *", "America/New_York"),  # across a DST change
        Timing.of("*/7 * * * * *"),
        Timing.of(None, interval_seconds=13, anchor_at=T0, end_at=T0 + timedelta(minutes=1)),
    ):
        after = datetime(2026, 3, 7, tzinfo=UTC)
        assert list(islice(timing.occurrences_after(after), 23)) == list(
            islice(timing.search_after(after), 23)
        )


def test_cached_timing_is_validated_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidScheduleError):
            cached_timing("61 * * * *", "UTC", None, None, None, None)
    assert cached_timing("* * * * *", "UTC", None, None, None, None) == Timing.of("* * * * *")
