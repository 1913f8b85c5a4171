"""Workflows, for standalone use, and KeeperHub's sync of a workflow's schedule from its nodes.

KeeperHub owns ``workflows``; on its database our rows would lack the owner (``user_id`` is NOT
NULL there), so creating one answers ``ConflictError`` with a message that says to use KeeperHub.
Deleting a workflow deletes its schedule and the schedule's runs by cascade.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import workflows
from keeperhub_scheduler.errors import ConflictError, InvalidScheduleError, NotFoundError
from keeperhub_scheduler.management.models import (
    SyncOutcome,
    Workflow,
    WorkflowCreate,
    WorkflowUpdate,
)
from keeperhub_scheduler.management.service import ScheduleService
from keeperhub_scheduler.management.sql import schedule_row
from keeperhub_scheduler.management.views import schedule_view

COLUMNS = (
    workflows.c.id,
    workflows.c.name,
    workflows.c.enabled,
    workflows.c.created_at,
    workflows.c.updated_at,
)


async def get_workflow(engine: AsyncEngine, workflow_id: str) -> Workflow:
    async with engine.connect() as connection:
        row = (
            await connection.execute(select(*COLUMNS).where(workflows.c.id == workflow_id))
        ).first()
    if row is None:
        raise NotFoundError("workflow", workflow_id)
    return Workflow.model_validate(dict(row._mapping))


async def create_workflow(engine: AsyncEngine, spec: WorkflowCreate) -> Workflow:
    try:
        async with engine.begin() as connection:
            now = await database_now(connection)
            await connection.execute(
                workflows.insert().values(
                    id=spec.id, name=spec.name, enabled=spec.enabled, created_at=now, updated_at=now
                )
            )
    except IntegrityError:
        async with engine.connect() as connection:
            exists = (
                await connection.execute(select(workflows.c.id).where(workflows.c.id == spec.id))
            ).first()
        if exists is not None:
            raise ConflictError(f"workflow {spec.id!r} already exists") from None
        raise ConflictError(
            "this database's workflows table is KeeperHub's (every workflow needs an owner);"
            " create workflows in KeeperHub, then schedule them here"
        ) from None
    return await get_workflow(engine, spec.id)


async def update_workflow(engine: AsyncEngine, workflow_id: str, patch: WorkflowUpdate) -> Workflow:
    values = {name: value for name, value in patch.model_dump().items() if value is not None}
    async with engine.begin() as connection:
        if values:
            values["updated_at"] = await database_now(connection)
            changed = await connection.execute(
                update(workflows)
                .where(workflows.c.id == workflow_id)
                .values(**values)
                .returning(workflows.c.id)
            )
            if changed.first() is None:
                raise NotFoundError("workflow", workflow_id)
    return await get_workflow(engine, workflow_id)


async def delete_workflow(engine: AsyncEngine, workflow_id: str) -> None:
    async with engine.begin() as connection:
        deleted = await connection.execute(
            delete(workflows).where(workflows.c.id == workflow_id).returning(workflows.c.id)
        )
        if deleted.first() is None:
            raise NotFoundError("workflow", workflow_id)


async def sync_workflow_schedule(
    engine: AsyncEngine, workflow_id: str, nodes: list[object]
) -> SyncOutcome:
    """KeeperHub's sync: the workflow's trigger node decides its schedule (see ``service``)."""
    try:
        result = await ScheduleService(engine).sync_workflow_schedule(workflow_id, nodes)
    except InvalidScheduleError as error:
        part = "scheduleTimezone" if error.field == "timezone" else "scheduleCron"
        raise InvalidScheduleError(f"{part}: {error.message}", field="nodes") from None
    if result.schedule is None:
        return SyncOutcome(action=result.action, schedule=None)
    async with engine.connect() as connection:
        now = await database_now(connection)
        row = await schedule_row(connection, str(result.schedule["id"]))
    return SyncOutcome(action=result.action, schedule=schedule_view(row, now))
