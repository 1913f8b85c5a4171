"""The scheduler at a glance: run counts, the oldest pending run, dispatch lag, recent failures,
schedules, and the queue's depth when the transport has a queue."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules
from keeperhub_scheduler.management.models import (
    DispatchLag,
    OldestPending,
    QueueDepth,
    ScheduleCounts,
    Status,
)
from keeperhub_scheduler.management.views import paused_clause
from keeperhub_scheduler.runs import FAILURES, RunKind, RunStatus
from keeperhub_scheduler.transport import depth_probe
from keeperhub_scheduler.transport.base import DEPTH_TIMEOUT_SECONDS, DepthProbe

LAG_WINDOW = timedelta(minutes=5)
LAG_SAMPLE = 10_000  # the newest runs of the window; enough for a p99, cheap at any volume


async def scheduler_status(engine: AsyncEngine, depth: DepthProbe | None = None) -> Status:
    async with engine.connect() as connection:
        now = await database_now(connection)
        counts = await _counts_by_status(connection)
        oldest = await _oldest_pending(connection, now)
        lag = await _dispatch_lag(connection, now)
        failures = await _failures_since(connection, now - timedelta(hours=1))
        schedules = await _schedule_counts(connection, now)
    return Status(
        database_time=now,
        runs_by_status=counts,
        oldest_pending=oldest,
        dispatch_lag=lag,
        failures_last_hour=failures,
        schedules=schedules,
        queue=await probe_queue_depth(depth) if depth is not None else None,
    )


def queue_depth_probe(settings: Settings, engine: AsyncEngine) -> DepthProbe:
    """Asks the configured transport for its queue's depth (None: it has no queue)."""
    return depth_probe(settings, engine)


async def _counts_by_status(connection: AsyncConnection) -> dict[str, int]:
    rows = await connection.execute(
        select(schedule_runs.c.status, func.count()).group_by(schedule_runs.c.status)
    )
    return {str(status): int(count) for status, count in rows.all()}


async def _oldest_pending(connection: AsyncConnection, now: datetime) -> OldestPending | None:
    row = (
        await connection.execute(
            select(schedule_runs.c.id, schedule_runs.c.schedule_id, schedule_runs.c.due_at)
            .where(schedule_runs.c.status == RunStatus.PENDING)
            .order_by(schedule_runs.c.due_at)
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    age = max(0.0, (now - row.due_at).total_seconds())
    return OldestPending(
        run_id=row.id, schedule_id=row.schedule_id, due_at=row.due_at, age_seconds=age
    )


async def _dispatch_lag(connection: AsyncConnection, now: datetime) -> DispatchLag:
    """Enqueued minus scheduled_for, over runs scheduled in the last five minutes."""
    rows = await connection.execute(
        select(schedule_runs.c.scheduled_for, schedule_runs.c.enqueued_at)
        .where(
            schedule_runs.c.scheduled_for >= now - LAG_WINDOW,
            schedule_runs.c.enqueued_at.is_not(None),
            schedule_runs.c.kind == RunKind.SCHEDULE,
        )
        .order_by(schedule_runs.c.scheduled_for.desc())
        .limit(LAG_SAMPLE)
    )
    lags = sorted(max(0.0, (enqueued - due).total_seconds()) for due, enqueued in rows.all())
    return DispatchLag(
        window_seconds=int(LAG_WINDOW.total_seconds()),
        samples=len(lags),
        p50_seconds=_percentile(lags, 0.50),
        p99_seconds=_percentile(lags, 0.99),
    )


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), math.ceil(round(fraction * len(ordered), 9))))
    return round(ordered[rank - 1], 6)


async def _failures_since(connection: AsyncConnection, since: datetime) -> int:
    statement = select(func.count()).where(
        schedule_runs.c.finished_at >= since, schedule_runs.c.status.in_(FAILURES)
    )
    return int((await connection.execute(statement)).scalar_one())


async def _schedule_counts(connection: AsyncConnection, now: datetime) -> ScheduleCounts:
    paused = paused_clause(now)
    row: Any = (
        await connection.execute(
            select(
                func.count(),
                func.count().filter(workflow_schedules.c.enabled),
                func.count().filter(paused),
            ).select_from(workflow_schedules)
        )
    ).one()
    return ScheduleCounts(total=int(row[0]), enabled=int(row[1] or 0), paused=int(row[2] or 0))


async def probe_queue_depth(depth: DepthProbe) -> QueueDepth | None:
    """The queue's and the DLQ's depth from ``depth``, or the reason it could not be read
    (None: the transport has no queue to ask)."""
    try:
        values = await asyncio.wait_for(depth(), DEPTH_TIMEOUT_SECONDS)
    except Exception as error:  # the status page must answer even when the queue does not
        return QueueDepth(error=f"{type(error).__name__}: {error}"[:300])
    if values is None:
        return None
    return QueueDepth(
        visible=values.get("queue_visible"),
        in_flight=values.get("queue_in_flight"),
        dlq_visible=values.get("dlq_visible"),
        dlq_in_flight=values.get("dlq_in_flight"),
    )
