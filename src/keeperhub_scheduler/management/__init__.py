"""Managing schedules without SQL: the operations behind the REST API and the CLI.

Each operation is an async function of an ``AsyncEngine`` and a request model
(``management.models``), answering a response model; errors are the scheduler's own
(``InvalidScheduleError`` with the field at fault, ``NotFoundError``, ``ConflictError``). They run
on PostgreSQL and on SQLite, and read the time from the database clock.
"""

from keeperhub_scheduler.dispatcher.retention import prune_runs
from keeperhub_scheduler.management.control import (
    backfill_schedule,
    pause_schedule,
    preview_backfill,
    resume_schedule,
    trigger_schedule,
)
from keeperhub_scheduler.management.preview import preview
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
