"""A claim batch decides schedules that are alike once: the same timing, the same last decided
occurrence and the same policies, without jitter. Whatever else differs between two rows, each
gets exactly the decision ``decide`` gives it alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keeperhub_scheduler.db.statements import DueSchedule
from keeperhub_scheduler.dispatcher.claim import decided
from keeperhub_scheduler.dispatcher.decide import Decision, ScheduleState, decide
from keeperhub_scheduler.timing import Timing

NOW = datetime(2026, 3, 2, 9, 0, 2, tzinfo=UTC)
GRACE = timedelta(seconds=5)

BASE: dict[str, Any] = {
    "id": "s-base",
    "workflow_id": "wf",
    "cron_expression": "* * * * *",
    "timezone": "UTC",
    "interval_seconds": None,
    "anchor_at": None,
    "start_at": None,
    "end_at": None,
    "jitter_seconds": 0,
    "misfire_policy": "fire_once",
    "catchup_window_seconds": 3600,
    "max_catchup_runs": 100,
    "paused_at": None,
    "paused_until": None,
    "decided_through": NOW - timedelta(minutes=10, seconds=2),  # ten occurrences late
    "updated_at": None,
    "workflow_enabled": True,
}

PAUSED = {"paused_at": NOW - timedelta(hours=1)}
FIRE_ALL = {"misfire_policy": "fire_all"}

# Two rows that differ in one thing that changes their decisions, so they may not share one:
# (the first row's changes to the base row, the second's).
DIFFERENT: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "last decided": ({}, {"decided_through": NOW - timedelta(minutes=1, seconds=2)}),
    "timing": ({}, {"cron_expression": "*/5 * * * *"}),
    "zone": ({}, {"cron_expression": "0 * * * *", "timezone": "Asia/Kolkata"}),
    "jitter": (
        {},
        {"jitter_seconds": 50, "decided_through": NOW - timedelta(minutes=1, seconds=2)},
    ),
    "misfire policy": ({}, {"misfire_policy": "skip"}),
    "catch-up window": ({}, {"catchup_window_seconds": 120}),
    "catch-up runs": (FIRE_ALL, FIRE_ALL | {"max_catchup_runs": 2}),
    "paused": ({}, PAUSED),
    "paused until": (PAUSED, PAUSED | {"paused_until": NOW - timedelta(minutes=3)}),
    "workflow disabled": ({}, {"workflow_enabled": False}),
    "workflow gone": ({}, {"workflow_enabled": None}),
    "timing changed under a stale key": (
        {},
        {"plan_key": "stale", "updated_at": NOW - timedelta(minutes=2, seconds=30)},
    ),
}


def row(**changes: Any) -> DueSchedule:
    """The base row with ``changes``, planned for its own timing unless a stale key is given."""
    values = BASE | changes
    timing = Timing.of(values["cron_expression"], values["timezone"])
    return DueSchedule(**({"plan_key": timing.plan_key(values["jitter_seconds"])} | values))


def alone(schedule: DueSchedule) -> Decision:
    """The decision ``decide`` gives this schedule by itself (stated here, not taken from the
    claim, so that the claim is checked against the rules and not against itself)."""
    timing = Timing.of(schedule.cron_expression, schedule.timezone)
    cursor = schedule.decided_through
    if schedule.plan_key != timing.plan_key(schedule.jitter_seconds):
        cursor = max(cursor, schedule.updated_at)  # type: ignore[type-var]
    state = ScheduleState(
        schedule_id=schedule.id,
        timing=timing,
        decided_through=cursor,  # type: ignore[arg-type]
        misfire_policy=schedule.misfire_policy,
        catchup_window=timedelta(seconds=schedule.catchup_window_seconds),
        max_catchup_runs=schedule.max_catchup_runs,
        jitter_seconds=schedule.jitter_seconds,
        paused_at=schedule.paused_at,
        paused_until=schedule.paused_until,
        workflow_enabled=bool(schedule.workflow_enabled),
    )
    return decide(state, NOW, GRACE)


def in_batch(schedules: list[DueSchedule]) -> list[Decision]:
    decisions: dict[tuple[Any, ...], Decision] = {}
    found = []
    for schedule in schedules:
        timing = Timing.of(schedule.cron_expression, schedule.timezone)
        key = timing.plan_key(schedule.jitter_seconds)
        found.append(decided(schedule, timing, key, NOW, GRACE, decisions))
    return found


def test_schedules_alike_but_for_their_id_share_one_decision() -> None:
    first, second = in_batch([row(id="s-1"), row(id="s-2", workflow_id="wf-2")])

    assert first is second
    assert first == alone(row(id="s-1"))
    # fire_once: the latest missed occurrence fires, and the one on time; the others coalesce.
    top_of_the_minute = NOW.replace(second=0)
    assert [fire.scheduled_for for fire in first.fires] == [
        top_of_the_minute - timedelta(minutes=1),
        top_of_the_minute,
    ]
    assert [skip.reason for skip in first.skips] == ["coalesced"]


@pytest.mark.parametrize("difference", DIFFERENT)
def test_a_schedule_that_differs_in_what_decides_it_gets_its_own_decision(
    difference: str,
) -> None:
    first_changes, second_changes = DIFFERENT[difference]
    first, second = row(id="s-1", **first_changes), row(id="s-2", **second_changes)

    decisions = in_batch([first, second])

    assert decisions == [alone(first), alone(second)]
    assert decisions[0] != decisions[1]  # the difference matters, so sharing would be wrong


def test_jittered_schedules_alike_in_every_column_are_each_decided_with_their_own_offset() -> None:
    on_time = NOW - timedelta(minutes=1, seconds=2)
    schedules = [row(id=f"s-{n}", jitter_seconds=50, decided_through=on_time) for n in range(20)]

    decisions = in_batch(schedules)

    assert decisions == [alone(schedule) for schedule in schedules]
    assert len({decision.next_run_at for decision in decisions}) > 1  # offsets differ by id
