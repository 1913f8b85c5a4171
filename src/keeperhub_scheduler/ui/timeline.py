"""The timeline's data: one lane per schedule, one mark per occurrence in the window.

A page holds ``LANES_PER_PAGE`` lanes. Their runs in the window are read by the (schedule_id,
scheduled_for) unique index, plus the skip ranges that began before it (by their own index).
Marks are gathered into ``COLUMNS`` columns across the window, so a lane that fires every second
for a week is still a few hundred marks: a column holding one run links to that run, a column
holding several takes its worst verdict's colour and lists them all in its label. Planned fires
ahead of now come from the schedule's own timing (the cron engine), not from the database.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.errors import InvalidScheduleError
from keeperhub_scheduler.management.views import is_paused, paused_clause
from keeperhub_scheduler.timing import timing_of_row
from keeperhub_scheduler.ui.verdicts import SKIPPED, verdict_of, worst

WINDOWS = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
}
AHEAD = 0.2  # the share of the window shown after now, for the planned fires
LANES_PER_PAGE = 25
COLUMNS = 720
MAX_ROWS = 60_000  # of one page's runs in the window; more is said, not silently cut
MAX_PLANNED = 200  # per lane
STATES = ("active", "paused", "failing", "disabled", "parked")
State = Literal["active", "paused", "failing", "disabled", "parked"]


@dataclass(frozen=True)
class TimelineQuery:
    window: str = "1h"
    end: datetime | None = None  # None: now, and following it
    workflow: str | None = None  # part of the workflow's id or name
    state: State | None = None
    timezone: str | None = None
    page: int = 1


@dataclass
class _Column:
    first: Any
    count: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)


async def read_timeline(engine: AsyncEngine, query: TimelineQuery) -> dict[str, Any]:
    """The page's lanes with their marks, as the timeline's script draws them (JSON)."""
    span = WINDOWS[query.window]
    async with engine.connect() as connection:
        now = await database_now(connection)
        end = min(query.end, now) if query.end is not None else now
        start, stop = end - span, end + span * AHEAD
        where = _filters(query, now)
        total = int(
            (
                await connection.execute(
                    select(func.count()).select_from(_lanes_from()).where(*where)
                )
            ).scalar_one()
        )
        lanes = list(
            (
                await connection.execute(
                    select(workflow_schedules, workflows.c.name.label("workflow_name"))
                    .select_from(_lanes_from())
                    .where(*where)
                    .order_by(workflows.c.name, workflow_schedules.c.id)
                    .offset((query.page - 1) * LANES_PER_PAGE)
                    .limit(LANES_PER_PAGE)
                )
            ).all()
        )
        runs, truncated = await _runs(connection, [lane.id for lane in lanes], start, stop)
    width = (stop - start) / COLUMNS
    return {
        "now": _ms(now),
        "start": _ms(start),
        "end": _ms(stop),
        "view_end": _ms(end),
        "span": int(span.total_seconds() * 1000),
        "live": query.end is None,
        "window": query.window,
        "page": query.page,
        "pages": max(1, -(-total // LANES_PER_PAGE)),
        "total_lanes": total,
        "truncated": truncated,
        "lanes": [_lane(lane, runs.get(lane.id, []), start, width, now, stop) for lane in lanes],
    }


def _lanes_from() -> Any:
    return workflow_schedules.outerjoin(
        workflows, workflows.c.id == workflow_schedules.c.workflow_id
    )


def _filters(query: TimelineQuery, now: datetime) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.workflow:
        where.append(
            or_(
                workflow_schedules.c.workflow_id.icontains(query.workflow, autoescape=True),
                workflows.c.name.icontains(query.workflow, autoescape=True),
            )
        )
    if query.timezone:
        where.append(workflow_schedules.c.timezone == query.timezone)
    paused = paused_clause(now)
    parked = and_(
        workflow_schedules.c.enabled,
        workflow_schedules.c.next_run_at.is_(None),
        workflow_schedules.c.last_error.like("invalid schedule:%"),
    )
    by_state: dict[str, ColumnElement[bool]] = {
        "active": and_(workflow_schedules.c.enabled, ~paused),
        "paused": paused,
        "failing": and_(workflow_schedules.c.enabled, workflow_schedules.c.last_status == "error"),
        "disabled": ~workflow_schedules.c.enabled,
        "parked": parked,
    }
    if query.state:
        where.append(by_state[query.state])
    return where


async def zones_in_use(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(workflow_schedules.c.timezone).distinct().order_by(workflow_schedules.c.timezone)
        )
        return [str(zone) for zone in rows.scalars()]


async def _runs(
    connection: AsyncConnection, ids: list[str], start: datetime, stop: datetime
) -> tuple[dict[str, list[Any]], bool]:
    if not ids:
        return {}, False
    statement = (
        select(
            schedule_runs.c.id,
            schedule_runs.c.schedule_id,
            schedule_runs.c.kind,
            schedule_runs.c.status,
            schedule_runs.c.skip_reason,
            schedule_runs.c.scheduled_for,
            schedule_runs.c.scheduled_until,
            schedule_runs.c.occurrences,
            schedule_runs.c.attempts,
            schedule_runs.c.http_status,
        )
        .where(
            schedule_runs.c.schedule_id.in_(ids),
            or_(
                and_(schedule_runs.c.scheduled_for >= start, schedule_runs.c.scheduled_for < stop),
                # a range of skips that began before the window and reaches into it
                and_(
                    schedule_runs.c.scheduled_until >= start, schedule_runs.c.scheduled_for < start
                ),
            ),
        )
        .limit(MAX_ROWS + 1)
    )
    rows = list((await connection.execute(statement)).all())
    by_lane: dict[str, list[Any]] = {}
    for row in rows[:MAX_ROWS]:
        by_lane.setdefault(row.schedule_id, []).append(row)
    return by_lane, len(rows) > MAX_ROWS


def _lane(
    lane: Any, runs: list[Any], start: datetime, width: timedelta, now: datetime, stop: datetime
) -> dict[str, Any]:
    marks, ranges, occurrences = _marks(runs, start, width)
    paused = is_paused(lane, now)
    return {
        "id": lane.id,
        "workflow_id": lane.workflow_id,
        "name": lane.workflow_name or lane.workflow_id,
        "timezone": lane.timezone,
        "enabled": bool(lane.enabled),
        "paused": paused,
        "paused_note": lane.paused_note if paused else None,
        "occurrences": occurrences,
        "marks": marks,
        "ranges": ranges,
        "planned": _planned(lane, now, stop, start, width, paused) if lane.enabled else [],
    }


def _marks(
    runs: list[Any], start: datetime, width: timedelta
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    columns: dict[int, _Column] = {}
    ranges = []
    occurrences = 0
    for run in runs:
        count = run.occurrences or 1
        occurrences += count
        if run.scheduled_until is not None:
            ranges.append(
                {
                    "t": _ms(run.scheduled_for),
                    "t2": _ms(run.scheduled_until),
                    "verdict": SKIPPED,
                    "n": count,
                    "label": f"skipped ({run.skip_reason or 'unknown'}): {count} occurrences"
                    f" {_text(run.scheduled_for)} to {_text(run.scheduled_until)}",
                    "run": run.id,
                }
            )
            continue
        index = max(0, int((run.scheduled_for - start) / width))
        column = columns.setdefault(index, _Column(first=run))
        column.count += 1
        verdict = verdict_of(run.status)
        column.verdicts[verdict] += 1
        column.labels[_status_text(run)] += 1
    marks = []
    for index in sorted(columns):
        column = columns[index]
        single = column.count == 1
        run = column.first
        marks.append(
            {
                "t": _ms(run.scheduled_for) if single else _ms(start + width * index),
                "verdict": worst(set(column.verdicts)),
                "n": column.count,
                "label": _single_label(run)
                if single
                else _group_label(column, start, width, index),
                "run": run.id if single else None,
            }
        )
    return marks, ranges, occurrences


def _status_text(run: Any) -> str:
    if run.status == SKIPPED:
        return f"skipped ({run.skip_reason or 'unknown'})"
    return str(run.status)


def _single_label(run: Any) -> str:
    parts = [_status_text(run), _text(run.scheduled_for)]
    if run.kind != "schedule":
        parts.append(run.kind)
    if run.attempts:
        parts.append(f"attempts {run.attempts}")
    if run.http_status is not None:
        parts.append(f"HTTP {run.http_status}")
    return " · ".join(parts)


def _group_label(column: _Column, start: datetime, width: timedelta, index: int) -> str:
    begin = start + width * index
    counts = ", ".join(f"{count} {text}" for text, count in column.labels.most_common())
    return f"{column.count} runs {_text(begin)} to {_text(begin + width)}: {counts}"


def _planned(
    lane: Any, now: datetime, stop: datetime, start: datetime, width: timedelta, paused: bool
) -> list[dict[str, Any]]:
    """The next fires in (now, stop], one per column, greyed; a pause that will still hold then
    is in the label (those occurrences will be skipped, not run)."""
    try:
        fires = timing_of_row(lane).next_n(now, MAX_PLANNED)
    except InvalidScheduleError:
        return []
    seen: set[int] = set()
    planned = []
    for fire in fires:
        if fire > stop:
            break
        index = int((fire - start) / width)
        if index in seen:
            continue
        seen.add(index)
        held = paused and (lane.paused_until is None or fire < lane.paused_until)
        label = f"planned {_text(fire)}" + (" (paused: will be skipped)" if held else "")
        planned.append({"t": _ms(fire), "label": label})
    return planned


def _ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def _text(instant: datetime) -> str:
    # isoformat is several times faster than strftime, and this runs once per mark
    return instant.astimezone(UTC).isoformat(sep=" ", timespec="seconds")[:19] + " UTC"
