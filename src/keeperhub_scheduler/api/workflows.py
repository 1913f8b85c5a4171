"""``/v1/workflows``: KeeperHub's schedule sync, and minimal workflows for standalone use."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from keeperhub_scheduler import management
from keeperhub_scheduler.api.deps import EngineDep, WorkflowId
from keeperhub_scheduler.api.errors import responses
from keeperhub_scheduler.management.models import (
    SyncOutcome,
    Workflow,
    WorkflowCreate,
    WorkflowSync,
    WorkflowUpdate,
)

router = APIRouter(prefix="/workflows", tags=["workflows"])


@router.put("/{workflow_id}/schedule", response_model=SyncOutcome, responses=responses(404, 422))
async def sync_schedule(
    engine: EngineDep, workflow_id: WorkflowId, body: WorkflowSync
) -> SyncOutcome:
    """KeeperHub's sync: make the workflow's schedule match the trigger node in ``nodes``
    (created, updated, unchanged, deleted, or none)."""
    return await management.sync_workflow_schedule(engine, workflow_id, body.nodes)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Workflow,
    responses=responses(409, 422),
)
async def create_workflow(engine: EngineDep, spec: WorkflowCreate) -> Workflow:
    """Create a workflow (standalone use; on KeeperHub's database, workflows are KeeperHub's)."""
    return await management.create_workflow(engine, spec)


@router.get("/{workflow_id}", response_model=Workflow, responses=responses(404, 422))
async def get_workflow(engine: EngineDep, workflow_id: WorkflowId) -> Workflow:
    return await management.get_workflow(engine, workflow_id)


@router.patch("/{workflow_id}", response_model=Workflow, responses=responses(404, 422))
async def update_workflow(
    engine: EngineDep, workflow_id: WorkflowId, patch: WorkflowUpdate
) -> Workflow:
    """Rename, enable or disable (a disabled workflow's occurrences are skipped)."""
    return await management.update_workflow(engine, workflow_id, patch)


@router.delete(
    "/{workflow_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(404, 422),
)
async def delete_workflow(engine: EngineDep, workflow_id: WorkflowId) -> Response:
    """Delete the workflow; its schedule and runs go with it."""
    await management.delete_workflow(engine, workflow_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
