"""Parked rows come back when a newer engine can read them.

A row the dispatcher cannot read (an expression or zone the engine refuses, written by someone
else) is parked by the claim: ``next_run_at`` NULL, ``last_error`` "invalid schedule: ...", and
``plan_key`` ``parked:engine-N``, N the engine's version (``cron.ENGINE_VERSION``); rows parked
before versions were recorded have a NULL ``plan_key`` and count as version 1.

When the engine's version is raised (it learned to read more: cron-parser parity made ``?`` and
``*/90`` valid), every dispatcher re-reads, now and then, the enabled rows parked by an older
version, a batch at a time (``FOR UPDATE SKIP LOCKED``, so dispatchers share the work):

* a row it can now read is due again: ``next_run_at`` = now, ``plan_key`` NULL, its parked error
  cleared. ``decided_through`` is kept, so the occurrences it missed while parked are decided by
  its misfire policy, as after an outage (``fire_once``: the latest one within the catch-up window
  runs), and the claim plans it from there;
* a row it still cannot read stays parked, marked with this version and the reason it gives now.

It works for every later change the same way: raise ``ENGINE_VERSION``. A dispatcher of an older
version still running during a rollout only re-reads versions below its own, so it never takes
back what a newer one decided; a row it parks again (as the old reader) is re-read by the newer
dispatchers at their next turn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler import cron
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.store import INVALID_PREFIX, parked_key
from keeperhub_scheduler.db.tables import workflow_schedules
from keeperhub_scheduler.errors import InvalidScheduleError
from keeperhub_scheduler.timing import cached_timing_of_row

log = logging.getLogger(__name__)

BATCH_SIZE = 500


@dataclass
class Unparked:
    replanned: int = 0
    still_invalid: int = 0


def _parked_by_older_engine() -> ColumnElement[bool]:
    older = [parked_key(version) for version in range(2, cron.ENGINE_VERSION)]
    by_version: ColumnElement[bool] = workflow_schedules.c.plan_key.is_(None)
    if older:
        by_version = or_(by_version, workflow_schedules.c.plan_key.in_(older))
    return (
        workflow_schedules.c.enabled
        & workflow_schedules.c.next_run_at.is_(None)
        & workflow_schedules.c.last_error.like(f"{INVALID_PREFIX}%")
        & by_version
    )


async def unpark(engine: AsyncEngine, batch_size: int = BATCH_SIZE) -> Unparked:
    """Re-read every row an older engine parked; plan again those this one can read."""
    result = Unparked()
    while True:
        async with engine.begin() as connection:
            rows = (
                await connection.execute(
                    select(workflow_schedules)
                    .where(_parked_by_older_engine())
                    .order_by(workflow_schedules.c.id)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            now = await database_now(connection)
            for row in rows:
                values = _reread(row)
                if values is None:
                    result.replanned += 1
                    values = {
                        "next_run_at": now,
                        "plan_key": None,
                        "last_status": None,
                        "last_error": None,
                        "last_status_for": None,
                    }
                else:
                    result.still_invalid += 1
                await connection.execute(
                    update(workflow_schedules)
                    .where(workflow_schedules.c.id == row.id)
                    .values(**values)
                )
        if len(rows) < batch_size:
            break
    if result.replanned or result.still_invalid:
        log.info(
            "re-read schedules parked by an older engine",
            extra={"replanned": result.replanned, "still_invalid": result.still_invalid},
        )
    return result


def _reread(row: Any) -> dict[str, Any] | None:
    """None when this engine reads the row; otherwise the columns that keep it parked."""
    try:
        cached_timing_of_row(row)
    except InvalidScheduleError as error:
        return {"plan_key": parked_key(), "last_error": f"{INVALID_PREFIX}{error}"}
    return None
