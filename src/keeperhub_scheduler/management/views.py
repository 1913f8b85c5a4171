"""Rows to answers: a schedule as users read it (description, state, next fire times)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_

from keeperhub_scheduler import cron
from keeperhub_scheduler.db.tables import workflow_schedules
from keeperhub_scheduler.errors import InvalidScheduleError
from keeperhub_scheduler.management.models import FireTime, Run, Schedule, ScheduleDetail
from keeperhub_scheduler.timing import Timing, timing_of_row

CRON_PARTS = frozenset({"second", "minute", "hour", "day_of_month", "month", "day_of_week"})


def build_timing(
    cron_expression: str | None,
    interval_seconds: int | None,
    *,
    timezone: str,
    anchor_at: datetime | None = None,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> Timing:
    """A validated timing from what a user sent; errors name the request's own field."""
    if cron_expression is not None and interval_seconds is not None:
        raise InvalidScheduleError(
            "give either cron_expression or interval_seconds, not both", field="interval_seconds"
        )
    if cron_expression is None and interval_seconds is None:
        raise InvalidScheduleError(
            "either cron_expression or interval_seconds is required", field="cron_expression"
        )
    if anchor_at is not None and interval_seconds is None:
        raise InvalidScheduleError(
            "anchor_at applies only to interval schedules", field="anchor_at"
        )
    try:
        return Timing.of(
            cron_expression,
            timezone,
            interval_seconds=interval_seconds,
            anchor_at=anchor_at,
            start_at=start_at,
            end_at=end_at,
        )
    except InvalidScheduleError as error:
        # The cron parser names the part of the expression ("minute"); the request's field is
        # the expression itself, and the message already says which part is wrong.
        if error.field in CRON_PARTS:
            raise InvalidScheduleError(error.message, field="cron_expression") from None
        raise


def is_paused(row: Any, now: datetime) -> bool:
    """Paused now: a pause whose ``until`` has passed is over, even before the dispatcher has
    cleared its columns (it does so at the schedule's next due occurrence)."""
    return row.paused_at is not None and (row.paused_until is None or row.paused_until > now)


def paused_clause(now: datetime) -> ColumnElement[bool]:
    return and_(
        workflow_schedules.c.paused_at.is_not(None),
        or_(workflow_schedules.c.paused_until.is_(None), workflow_schedules.c.paused_until > now),
    )


def schedule_view(row: Any, now: datetime) -> Schedule:
    values = dict(row._mapping)
    description: str | None = None
    problem: str | None = None
    try:
        description = timing_of_row(row).describe()
    except InvalidScheduleError as error:
        problem = str(error)  # a row someone else wrote; the dispatcher parks it
    is_interval = row.interval_seconds is not None
    values.update(
        cron_expression=None if is_interval else row.cron_expression,
        description=description,
        problem=problem,
        paused=is_paused(row, now),
        run_count=_count(row.run_count),
    )
    return Schedule.model_validate(values)


def schedule_detail(row: Any, now: datetime, recent: list[Any], count: int = 5) -> ScheduleDetail:
    schedule = schedule_view(row, now)
    fires: list[FireTime] = []
    if schedule.problem is None:
        fires = fire_times(timing_of_row(row), now, count)
    return ScheduleDetail(
        **schedule.model_dump(),
        next_fire_times=fires,
        recent_runs=[run_view(run) for run in recent],
    )


def run_view(row: Any) -> Run:
    return Run.model_validate(dict(row._mapping))


def fire_times(timing: Timing, after: datetime, count: int) -> list[FireTime]:
    """The next ``count`` occurrences, each in UTC and local time, with DST marks."""
    zone = ZoneInfo(timing.timezone)
    previous = after.astimezone(zone).utcoffset()
    answer = []
    for fire in timing.next_n(after, count):
        local = fire.astimezone(zone)
        offset = local.utcoffset() or timedelta(0)
        note = (
            None
            if timing.is_interval
            else cron.dst_note(timing.cron_expression, timing.timezone, fire, timing.hash_seed)
        )
        answer.append(
            FireTime(
                utc=fire,
                local=local,
                utc_offset=_offset_text(offset),
                offset_changed=offset != previous,
                dst_note=note,
            )
        )
        previous = offset
    return answer


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def _count(value: Any) -> int:
    """KeeperHub keeps run_count as text; anything unreadable counts as 0."""
    try:
        return max(0, int(str(value)))
    except ValueError:
        return 0
