"""Managing schedules without SQL: the operations behind the REST API and the CLI.

Each operation is an async function of an ``AsyncEngine`` and a request model
(``management.models``), answering a response model; errors are the scheduler's own
(``InvalidScheduleError`` with the field at fault, ``NotFoundError``, ``ConflictError``). They run
on PostgreSQL and on SQLite, and read the time from the database clock.

Each name is imported on first use (PEP 562), so that ``keeperhub-scheduler --help`` and the
request models in ``management.models`` do not pull in the dispatcher, SQS and every dialect.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Eager: the submodule of the same name would otherwise shadow the function once imported.
from keeperhub_scheduler.management.preview import preview

if TYPE_CHECKING:
    from keeperhub_scheduler.dispatcher.retention import prune_runs
    from keeperhub_scheduler.management.control import (
        backfill_schedule,
        pause_schedule,
        preview_backfill,
        resume_schedule,
        trigger_schedule,
    )
    from keeperhub_scheduler.management.runs import get_run, list_runs
    from keeperhub_scheduler.management.schedules import (
        create_schedule,
        delete_schedule,
        get_schedule,
        list_schedules,
        update_schedule,
    )
    from keeperhub_scheduler.management.status import queue_depth_probe, scheduler_status
    from keeperhub_scheduler.management.workflows import (
        create_workflow,
        delete_workflow,
        get_workflow,
        sync_workflow_schedule,
        update_workflow,
    )

_HOMES = {
    "backfill_schedule": "keeperhub_scheduler.management.control",
    "create_schedule": "keeperhub_scheduler.management.schedules",
    "create_workflow": "keeperhub_scheduler.management.workflows",
    "delete_schedule": "keeperhub_scheduler.management.schedules",
    "delete_workflow": "keeperhub_scheduler.management.workflows",
    "get_run": "keeperhub_scheduler.management.runs",
    "get_schedule": "keeperhub_scheduler.management.schedules",
    "get_workflow": "keeperhub_scheduler.management.workflows",
    "list_runs": "keeperhub_scheduler.management.runs",
    "list_schedules": "keeperhub_scheduler.management.schedules",
    "pause_schedule": "keeperhub_scheduler.management.control",
    "preview_backfill": "keeperhub_scheduler.management.control",
    "prune_runs": "keeperhub_scheduler.dispatcher.retention",
    "queue_depth_probe": "keeperhub_scheduler.management.status",
    "resume_schedule": "keeperhub_scheduler.management.control",
    "scheduler_status": "keeperhub_scheduler.management.status",
    "sync_workflow_schedule": "keeperhub_scheduler.management.workflows",
    "trigger_schedule": "keeperhub_scheduler.management.control",
    "update_schedule": "keeperhub_scheduler.management.schedules",
    "update_workflow": "keeperhub_scheduler.management.workflows",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "backfill_schedule",
    "create_schedule",
    "create_workflow",
    "delete_schedule",
    "delete_workflow",
    "get_run",
    "get_schedule",
    "get_workflow",
    "list_runs",
    "list_schedules",
    "pause_schedule",
    "preview",
    "preview_backfill",
    "prune_runs",
    "queue_depth_probe",
    "resume_schedule",
    "scheduler_status",
    "sync_workflow_schedule",
    "trigger_schedule",
    "update_schedule",
    "update_workflow",
]
