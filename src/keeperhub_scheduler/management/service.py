"""The schedule service: the spec's ``lib/schedule-service``, against our tables.

Module functions are pure (validation, next run, reading KeeperHub's workflow nodes); the
``ScheduleService`` methods write, each in one transaction. Every write that changes when a
schedule fires (cron, zone, enabled) re-plans it in the same statement: ``next_run_at``,
``decided_through`` (occurrences before the change are not this timing's) and ``plan_key``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler import cron
from keeperhub_scheduler.db import store_for
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import workflow_schedules, workflows
from keeperhub_scheduler.errors import InvalidScheduleError, NotFoundError
from keeperhub_scheduler.timing import Timing, next_due, timing_of_row

_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_schedule_id() -> str:
    """21 lowercase letters and digits, the shape of KeeperHub's own generated ids."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(21))


@dataclass(frozen=True)
class Validation:
    """KeeperHub's ``{valid, error}`` shape, plus the field the error is about."""

    valid: bool
    error: str | None = None
    field: str | None = None


@dataclass(frozen=True)
class ScheduleConfig:
    cron_expression: str
    timezone: str = "UTC"


@dataclass(frozen=True)
class SyncResult:
    action: Literal["created", "updated", "unchanged", "deleted", "none"]
    schedule: dict[str, Any] | None


def validate_cron_expression(expression: str) -> Validation:
    try:
        cron.validate_cron_expression(expression)
    except InvalidScheduleError as error:
        return Validation(False, str(error), error.field)
    return Validation(True)


def validate_timezone(name: str) -> Validation:
    try:
        cron.validate_timezone(name)
    except InvalidScheduleError as error:
        return Validation(False, str(error), error.field)
    return Validation(True)


def compute_next_run_time(
    expression: str, timezone: str = "UTC", after: datetime | None = None
) -> datetime | None:
    """The next fire time after ``after`` (default: now), or None when the input is invalid."""
    try:
        timing = Timing.of(expression, timezone)
    except InvalidScheduleError:
        return None
    return timing.next_after(after or datetime.now(UTC))


def extract_schedule_config(nodes: Any) -> ScheduleConfig | None:
    """The schedule of a KeeperHub workflow, from its trigger node; None when it has none.

    KeeperHub's node: ``{"data": {"type": "trigger", "config": {"triggerType": "Schedule",
    "scheduleCron": "0 9 * * 1-5", "scheduleTimezone": "Europe/Berlin"}}}``.
    """
    if not isinstance(nodes, list):
        return None
    for node in nodes:
        data = node.get("data") if isinstance(node, dict) else None
        if not isinstance(data, dict) or data.get("type") != "trigger":
            continue
        config = data.get("config")
        if not isinstance(config, dict) or config.get("triggerType") != "Schedule":
            continue
        expression = config.get("scheduleCron")
        if not isinstance(expression, str) or not expression.strip():
            return None
        zone = config.get("scheduleTimezone")
        return ScheduleConfig(expression.strip(), zone if isinstance(zone, str) and zone else "UTC")
    return None


def plan_values(
    timing: Timing, schedule_id: str, jitter_seconds: int, now: datetime
) -> dict[str, Any]:
    """The planning columns for a schedule whose timing starts to apply at ``now``."""
    timing = timing.for_schedule(schedule_id)
    upcoming = next_due(timing, schedule_id, jitter_seconds, now)
    return {
        "next_run_at": upcoming[1] if upcoming else None,
        "decided_through": now,
        "plan_key": timing.plan_key(jitter_seconds),
    }


class ScheduleService:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get_workflow_schedule(self, workflow_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(workflow_schedules).where(
                        workflow_schedules.c.workflow_id == workflow_id
                    )
                )
            ).first()
        return dict(row._mapping) if row else None

    async def sync_workflow_schedule(self, workflow_id: str, nodes: Any) -> SyncResult:
        """Make the workflow's schedule match its nodes: create, update, delete or leave it.

        One atomic upsert on the unique ``workflow_id`` (never find-then-insert, which two
        concurrent saves would race); an unchanged cron and zone leave the plan untouched.
        """
        config = extract_schedule_config(nodes)
        if config is None:
            async with self.engine.begin() as connection:
                deleted = await connection.execute(
                    delete(workflow_schedules)
                    .where(workflow_schedules.c.workflow_id == workflow_id)
                    .returning(workflow_schedules.c.id)
                )
                gone = deleted.first() is not None
            return SyncResult("deleted" if gone else "none", None)
        timing = Timing.of(config.cron_expression, config.timezone)
        async with self.engine.begin() as connection:
            await _require_workflow(connection, workflow_id)
            insert = store_for(self.engine).insert(workflow_schedules)
            row, action = await _upsert(connection, insert, workflow_id, timing)
        return SyncResult(action, row)

    async def set_schedule_enabled(self, workflow_id: str, enabled: bool) -> dict[str, Any]:
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            current = (
                await connection.execute(
                    select(workflow_schedules)
                    .where(workflow_schedules.c.workflow_id == workflow_id)
                    .with_for_update()
                )
            ).first()
            if current is None:
                raise NotFoundError("schedule of workflow", workflow_id)
            values: dict[str, Any] = {"enabled": enabled, "updated_at": now}
            if enabled and not current.enabled:
                timing = timing_of_row(current)
                values |= plan_values(timing, current.id, current.jitter_seconds, now)
            elif not enabled:
                values["next_run_at"] = None
            row = (
                await connection.execute(
                    update(workflow_schedules)
                    .where(workflow_schedules.c.id == current.id)
                    .values(**values)
                    .returning(workflow_schedules)
                )
            ).one()
        return dict(row._mapping)


async def _require_workflow(connection: AsyncConnection, workflow_id: str) -> None:
    found = await connection.execute(select(workflows.c.id).where(workflows.c.id == workflow_id))
    if found.first() is None:
        raise NotFoundError("workflow", workflow_id)


async def _upsert(
    connection: AsyncConnection, insert_into: Any, workflow_id: str, timing: Timing
) -> tuple[dict[str, Any], Literal["created", "updated", "unchanged"]]:
    now = await database_now(connection)
    schedule_id = new_schedule_id()
    values = {
        "id": schedule_id,
        "workflow_id": workflow_id,
        "cron_expression": timing.cron_expression,
        "timezone": timing.timezone,
        "enabled": True,
        "created_at": now,
        "updated_at": now,
    } | plan_values(timing, schedule_id, 0, now)
    insert = insert_into.values(**values)
    changed = (
        (workflow_schedules.c.cron_expression != insert.excluded.cron_expression)
        | (workflow_schedules.c.timezone != insert.excluded.timezone)
        | workflow_schedules.c.interval_seconds.is_not(None)
    )
    # On conflict the existing row keeps its id; its plan is recomputed below with that id.
    statement = insert.on_conflict_do_update(
        index_elements=[workflow_schedules.c.workflow_id],
        set_={
            "cron_expression": insert.excluded.cron_expression,
            "timezone": insert.excluded.timezone,
            "updated_at": insert.excluded.updated_at,
            "interval_seconds": None,  # the nodes say cron: an interval set elsewhere gives way
            "anchor_at": None,
            "plan_key": None,
        },
        where=changed,
    ).returning(workflow_schedules)
    try:
        row = (await connection.execute(statement)).first()
    except IntegrityError as error:
        raise NotFoundError("workflow", workflow_id) from error
    if row is None:
        existing = (
            await connection.execute(
                select(workflow_schedules).where(workflow_schedules.c.workflow_id == workflow_id)
            )
        ).one()
        return dict(existing._mapping), "unchanged"
    if row.id == schedule_id:
        return dict(row._mapping), "created"
    replanned = plan_values(timing_of_row(row), row.id, row.jitter_seconds, now)
    updated = (
        await connection.execute(
            update(workflow_schedules)
            .where(workflow_schedules.c.id == row.id)
            .values(**replanned)
            .returning(workflow_schedules)
        )
    ).one()
    return dict(updated._mapping), "updated"
