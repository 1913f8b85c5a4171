"""What the overview shows, read in one connection: fires by verdict over the last day (with the
last hour's), fire lateness, the processes' heartbeats, and what needs a person.

Every query is bounded by an index: the day's runs by ``scheduled_for``, dead runs by their own
partial index, lateness by a capped sample of the newest runs. Counts of a skip row are its
``occurrences`` (a week-long pause is one row standing for many occurrences).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler.db.engine import database_now, seconds_between
from keeperhub_scheduler.db.heartbeats import Beat, recent_beats
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.runs import RunStatus
from keeperhub_scheduler.ui.verdicts import SKIPPED, VERDICTS, verdict_of

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
BUCKET_SECONDS = 900  # the chart's resolution: 96 quarter-hours over the day
LATENESS_SAMPLE = 10_000
SHOWN = 20  # dead runs and parked schedules listed; the rest are counted
PROCESSES_SINCE = timedelta(days=1)


@dataclass
class Lateness:
    samples: int
    p50_seconds: float | None
    p99_seconds: float | None


@dataclass
class Process:
    beat: Beat
    alive: bool
    silent_seconds: float
    work_seconds: float | None  # since the last claim or receive


@dataclass
class Overview:
    now: datetime
    last_hour: dict[str, int]
    last_day: dict[str, int]
    skipped_by_reason: dict[str, int]
    chart: dict[str, list[float]]  # "x": bucket starts (epoch s); one series per verdict
    lateness: Lateness
    processes: list[Process]
    dead_runs: list[Any]
    dead_last_day: int
    parked: list[Any]
    failing: int  # enabled schedules whose last run failed


async def read_overview(engine: AsyncEngine) -> Overview:
    async with engine.connect() as connection:
        now = await database_now(connection)
        hour, day, reasons, chart = await _fires(connection, now)
        return Overview(
            now=now,
            last_hour=hour,
            last_day=day,
            skipped_by_reason=reasons,
            chart=chart,
            lateness=await _lateness(connection, now),
            processes=_processes(await recent_beats(connection, now - PROCESSES_SINCE), now),
            dead_runs=await _dead_runs(connection),
            dead_last_day=await _dead_since(connection, now - DAY),
            parked=await _parked(connection),
            failing=await _failing(connection),
        )


async def _fires(
    connection: AsyncConnection, now: datetime
) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, list[float]]]:
    bucket = func.floor(
        seconds_between(connection, now, schedule_runs.c.scheduled_for) / BUCKET_SECONDS
    )
    rows = await connection.execute(
        select(
            bucket.label("bucket"),
            schedule_runs.c.status,
            schedule_runs.c.skip_reason,
            func.sum(func.coalesce(schedule_runs.c.occurrences, 1)).label("fires"),
        )
        .where(schedule_runs.c.scheduled_for > now - DAY, schedule_runs.c.scheduled_for <= now)
        .group_by(bucket, schedule_runs.c.status, schedule_runs.c.skip_reason)
    )
    buckets = int(DAY.total_seconds()) // BUCKET_SECONDS
    per_bucket = {verdict: [0.0] * buckets for verdict in VERDICTS}
    hour: Counter[str] = Counter()
    day: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    hour_buckets = int(HOUR.total_seconds()) // BUCKET_SECONDS
    for row in rows.all():
        verdict = verdict_of(row.status)
        count = int(row.fires)
        index = min(buckets - 1, max(0, int(row.bucket)))
        per_bucket[verdict][buckets - 1 - index] += count  # oldest first, for the chart
        day[verdict] += count
        if index < hour_buckets:
            hour[verdict] += count
        if verdict == SKIPPED:
            reasons[row.skip_reason or "unknown"] += count
    start = now.timestamp() - buckets * BUCKET_SECONDS
    chart: dict[str, list[float]] = {"x": [start + i * BUCKET_SECONDS for i in range(buckets)]}
    chart |= per_bucket
    return _full(hour), _full(day), dict(reasons.most_common()), chart


def _full(counts: Counter[str]) -> dict[str, int]:
    return {verdict: counts.get(verdict, 0) for verdict in VERDICTS}


async def _lateness(connection: AsyncConnection, now: datetime) -> Lateness:
    """From due (the occurrence plus jitter) to the KeeperHub call's start, scheduled runs only,
    over the newest runs of the last hour."""
    rows = await connection.execute(
        select(schedule_runs.c.due_at, schedule_runs.c.started_at)
        .where(
            schedule_runs.c.scheduled_for > now - HOUR,
            schedule_runs.c.scheduled_for <= now,
            schedule_runs.c.kind == "schedule",
            schedule_runs.c.started_at.is_not(None),
        )
        .order_by(schedule_runs.c.scheduled_for.desc())
        .limit(LATENESS_SAMPLE)
    )
    late = sorted(max(0.0, (started - due).total_seconds()) for due, started in rows.all())
    return Lateness(len(late), _percentile(late, 0.50), _percentile(late, 0.99))


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest rank, as ``/v1/status`` computes its dispatch lag."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), math.ceil(round(fraction * len(ordered), 9))))
    return ordered[rank - 1]


def _processes(beats: list[Beat], now: datetime) -> list[Process]:
    answer = []
    for beat in beats:
        silent = max(0.0, (now - beat.beat_at).total_seconds())
        work = None if beat.last_work_at is None else (now - beat.last_work_at).total_seconds()
        alive = silent <= beat.max_silence_seconds
        answer.append(Process(beat, alive, silent, None if work is None else max(0.0, work)))
    return answer


async def _dead_runs(connection: AsyncConnection) -> list[Any]:
    statement = (
        select(schedule_runs, workflows.c.name.label("workflow_name"))
        .select_from(
            schedule_runs.outerjoin(workflows, workflows.c.id == schedule_runs.c.workflow_id)
        )
        .where(schedule_runs.c.status == RunStatus.DEAD, schedule_runs.c.finished_at.is_not(None))
        .order_by(schedule_runs.c.finished_at.desc())
        .limit(SHOWN)
    )
    return list((await connection.execute(statement)).all())


async def _dead_since(connection: AsyncConnection, since: datetime) -> int:
    statement = select(func.count()).where(
        schedule_runs.c.status == RunStatus.DEAD, schedule_runs.c.finished_at >= since
    )
    return int((await connection.execute(statement)).scalar_one())


def _parked_clause() -> ColumnElement[bool]:
    """Schedules the dispatcher parked (see ``dispatcher.claim``): enabled, but never due."""
    return and_(
        workflow_schedules.c.enabled,
        workflow_schedules.c.next_run_at.is_(None),
        workflow_schedules.c.last_error.like("invalid schedule:%"),
    )


async def _parked(connection: AsyncConnection) -> list[Any]:
    statement = (
        select(
            workflow_schedules.c.id,
            workflow_schedules.c.workflow_id,
            workflow_schedules.c.cron_expression,
            workflow_schedules.c.timezone,
            workflow_schedules.c.last_error,
        )
        .add_columns(workflows.c.name.label("workflow_name"))
        .select_from(
            workflow_schedules.outerjoin(
                workflows, workflows.c.id == workflow_schedules.c.workflow_id
            )
        )
        .where(_parked_clause())
        .order_by(workflow_schedules.c.updated_at.desc())
        .limit(SHOWN)
    )
    return list((await connection.execute(statement)).all())


async def _failing(connection: AsyncConnection) -> int:
    statement = select(func.count()).where(
        workflow_schedules.c.enabled, workflow_schedules.c.last_status == "error", ~_parked_clause()
    )
    return int((await connection.execute(statement)).scalar_one())
