"""``/v1/workflows``: KeeperHub's schedule sync, and minimal workflows for standalone use."""

from __future__ import annotations

from fastapi import APIRouter, status

from keeperhub_scheduler import management
from keeperhub_scheduler.api.crud import Item, add_item_routes
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


add_item_routes(
    router,
    Item(
        noun="workflow",
        id_type=WorkflowId,
        model=Workflow,
        patch_model=WorkflowUpdate,
        get=management.get_workflow,
        update=management.update_workflow,
        delete=management.delete_workflow,
    ),
    {
        "get": None,
        "update": "Rename, enable or disable (a disabled workflow's occurrences are skipped).",
        "delete": "Delete the workflow; its schedule and runs go with it.",
    },
)
