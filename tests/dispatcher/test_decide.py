"""The misfire policy, as a table: what happens to each occurrence since the last decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeperhub_scheduler.dispatcher.decide import (
    ScheduleState,
    _single_on_time,
    decide,
    decide_in_full,
)
from keeperhub_scheduler.timing import Timing

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
GRACE = timedelta(seconds=60)
EVERY_MINUTE = Timing.of("* * * * *")


def state(**changes: object) -> ScheduleState:
    values: dict[str, object] = {
        "schedule_id": "s1",
        "timing": EVERY_MINUTE,
        "decided_through": T0 - MINUTE,  # 09:59 was the last decided occurrence
    }
    values.update(changes)
    return ScheduleState(**values)  # type: ignore[arg-type]


def fired(decision: object) -> list[str]:
    return [f.scheduled_for.strftime("%H:%M") for f in decision.fires]  # type: ignore[attr-defined]


def skipped(decision: object) -> list[tuple[str, str, int | None, str]]:
    return [
        (s.first.strftime("%H:%M"), s.last.strftime("%H:%M"), s.count, s.reason)
        for s in decision.skips  # type: ignore[attr-defined]
    ]


def test_an_on_time_tick_fires_the_due_occurrence_and_plans_the_next() -> None:
    decision = decide(state(), T0 + timedelta(seconds=2), GRACE)
    assert fired(decision) == ["10:00"]
    assert decision.skips == []
    assert decision.decided_through == T0
    assert decision.next_run_at == T0 + MINUTE


def test_nothing_due_decides_nothing() -> None:
    decision = decide(state(decided_through=T0), T0 + timedelta(seconds=30), GRACE)
    assert decision.fires == []
    assert decision.skips == []
    assert decision.decided_through is None
    assert decision.next_run_at == T0 + MINUTE


def test_a_tick_within_the_grace_fires_everything_it_finds() -> None:
    # A CronJob pass that starts 50 s late still finds 10:00 on time.
    decision = decide(state(), T0 + timedelta(seconds=50), GRACE)
    assert fired(decision) == ["10:00"]


# A tick that starts 5 minutes late: 10:00-10:04 are missed (more than 60 s late), 10:05 is on time.
LATE_NOW = T0 + 5 * MINUTE + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("policy", "fires", "skips"),
    [
        ("fire_once", ["10:04", "10:05"], [("10:00", "10:03", 4, "coalesced")]),
        ("fire_all", ["10:00", "10:01", "10:02", "10:03", "10:04", "10:05"], []),
        ("skip", ["10:05"], [("10:00", "10:04", 5, "misfired")]),
    ],
)
def test_misfire_policies_after_a_late_tick(
    policy: str, fires: list[str], skips: list[tuple[str, str, int, str]]
) -> None:
    decision = decide(state(misfire_policy=policy), LATE_NOW, GRACE)
    assert fired(decision) == fires
    assert skipped(decision) == skips
    assert decision.decided_through == T0 + 5 * MINUTE


def test_fire_all_is_bounded_by_max_catchup_runs() -> None:
    decision = decide(state(misfire_policy="fire_all", max_catchup_runs=2), LATE_NOW, GRACE)
    assert fired(decision) == ["10:03", "10:04", "10:05"]
    assert skipped(decision) == [("10:00", "10:02", 3, "catchup_limit")]


def test_occurrences_older_than_the_catch_up_window_are_missed_window() -> None:
    decision = decide(
        state(misfire_policy="fire_all", catchup_window=timedelta(minutes=3)), LATE_NOW, GRACE
    )
    assert skipped(decision) == [("10:00", "10:02", 3, "missed_window")]
    assert fired(decision) == ["10:03", "10:04", "10:05"]


def test_a_long_outage_is_one_counted_row_not_one_row_per_occurrence() -> None:
    now = T0 + timedelta(days=2, seconds=5)
    decision = decide(state(catchup_window=timedelta(hours=1)), now, GRACE)
    (old, coalesced) = decision.skips
    assert old.reason == "missed_window"
    assert old.count is not None
    assert old.count > 2000
    assert coalesced.reason == "coalesced"
    assert fired(decision) == ["09:59", "10:00"]


def test_an_uncountable_outage_is_one_row_marked_uncounted() -> None:
    every_second = Timing.of("* * * * * *")
    now = T0 + timedelta(days=1)
    decision = decide(state(timing=every_second, catchup_window=timedelta(minutes=10)), now, GRACE)
    assert decision.skips[0].reason == "missed_window"
    assert decision.skips[0].count is None
    assert decision.fires[-1].scheduled_for == now


def test_paused_occurrences_are_skipped_with_the_reason_and_the_pause_ends_by_itself() -> None:
    paused = state(paused_at=T0 - 10 * MINUTE, paused_until=T0 + 2 * MINUTE)
    decision = decide(paused, T0 + 3 * MINUTE, GRACE)
    assert skipped(decision) == [("10:00", "10:01", 2, "paused")]
    assert fired(decision) == ["10:02", "10:03"]
    assert decision.pause_ended is True


def test_an_indefinite_pause_skips_everything_and_does_not_end() -> None:
    decision = decide(state(paused_at=T0 - MINUTE), T0 + timedelta(seconds=1), GRACE)
    assert skipped(decision) == [("10:00", "10:00", 1, "paused")]
    assert decision.pause_ended is False


def test_a_disabled_workflow_skips_with_its_reason() -> None:
    decision = decide(state(workflow_enabled=False), T0 + timedelta(seconds=1), GRACE)
    assert skipped(decision) == [("10:00", "10:00", 1, "workflow_disabled")]


def test_jitter_delays_the_due_instant_but_never_past_the_next_occurrence() -> None:
    jittery = state(jitter_seconds=3600)  # asks for up to an hour; a minute apart caps it
    decision = decide(jittery, T0 + MINUTE, GRACE)
    assert decision.next_run_at is not None
    offset = decision.next_run_at - decision.next_occurrence  # type: ignore[operator]
    assert timedelta(0) <= offset <= timedelta(seconds=30)
    again = decide(jittery, T0 + MINUTE, GRACE)
    assert again.next_run_at == decision.next_run_at  # deterministic per schedule


def test_end_at_stops_the_schedule() -> None:
    bounded = Timing.of("* * * * *", end_at=T0 + MINUTE)
    decision = decide(state(timing=bounded), T0 + 2 * MINUTE, GRACE)
    assert fired(decision) == ["10:00", "10:01"]
    assert decision.next_run_at is None


def test_start_at_defers_the_first_occurrence() -> None:
    bounded = Timing.of("* * * * *", start_at=T0 + 10 * MINUTE)
    decision = decide(state(timing=bounded), T0 + timedelta(seconds=5), GRACE)
    assert decision.fires == []
    assert decision.next_run_at == T0 + 10 * MINUTE


def test_interval_schedules_count_from_their_anchor() -> None:
    every_55_minutes = Timing.of(None, interval_seconds=55 * 60, anchor_at=T0)
    decision = decide(
        state(timing=every_55_minutes, decided_through=T0), T0 + timedelta(hours=2), GRACE
    )
    assert fired(decision) == ["11:50"]
    assert skipped(decision) == [("10:55", "10:55", 1, "coalesced")]
    assert decision.next_run_at == T0 + 3 * timedelta(minutes=55)


# --- the quick path for the common case decides exactly what the full walk decides ---------------
TIMINGS = [
    EVERY_MINUTE,
    Timing.of("* * * * * *"),
    Timing.of("*/10 * * * * *"),
    Timing.of("0 9 * * 1-5", "Europe/Berlin"),
    Timing.of("30 2 * * *", "America/New_York"),  # DST gaps and folds
    Timing.of(None, interval_seconds=7, anchor_at=T0 + timedelta(microseconds=3)),
    Timing.of("* * * * *", end_at=T0 + 3 * MINUTE),
]


@settings(max_examples=400, deadline=None)
@given(
    timing=st.sampled_from(TIMINGS),
    cursor_offset=st.integers(-3 * 86_400, 86_400),
    now_offset=st.one_of(st.integers(0, 130), st.integers(0, 4 * 86_400)),
    jitter=st.sampled_from([0, 1, 30, 3600]),
    grace=st.sampled_from([0, 1, 60, 600]),
    policy=st.sampled_from(["fire_once", "fire_all", "skip"]),
    paused=st.booleans(),
    workflow_enabled=st.booleans(),
)
def test_decide_agrees_with_the_full_walk(
    timing: Timing,
    cursor_offset: int,
    now_offset: int,
    jitter: int,
    grace: int,
    policy: str,
    paused: bool,
    workflow_enabled: bool,
) -> None:
    cursor = T0 + timedelta(seconds=cursor_offset, microseconds=cursor_offset % 7)
    now = cursor + timedelta(seconds=now_offset, microseconds=now_offset % 11)
    schedule = state(
        timing=timing,
        decided_through=cursor,
        misfire_policy=policy,
        catchup_window=timedelta(hours=1),
        jitter_seconds=jitter,
        paused_at=cursor if paused else None,
        paused_until=cursor + timedelta(minutes=2) if paused else None,
        workflow_enabled=workflow_enabled,
    )
    assert decide(schedule, now, timedelta(seconds=grace)) == decide_in_full(
        schedule, now, timedelta(seconds=grace)
    )


def test_the_quick_path_is_taken_often_and_agrees_each_time() -> None:
    taken = 0
    for timing in TIMINGS:
        for jitter in (0, 1, 30):
            for seconds in range(0, 125, 3):
                schedule = state(timing=timing, jitter_seconds=jitter)
                now = T0 + timedelta(seconds=seconds)
                quick = _single_on_time(schedule, now, GRACE)
                if quick is not None:
                    taken += 1
                    assert quick == decide_in_full(schedule, now, GRACE)
    assert taken > 100
