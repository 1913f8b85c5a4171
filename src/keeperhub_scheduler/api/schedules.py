"""``/v1/schedules``: CRUD, pause/resume, trigger, backfill, and a schedule's runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from keeperhub_scheduler import management
from keeperhub_scheduler.api.crud import Item, add_item_routes
from keeperhub_scheduler.api.deps import EngineDep, ScheduleId
from keeperhub_scheduler.api.errors import responses
from keeperhub_scheduler.management.models import (
    BackfillRequest,
    BackfillResult,
    PauseRequest,
    Run,
    RunPage,
    RunQuery,
    ScheduleCreate,
    ScheduleDetail,
    SchedulePage,
    ScheduleQuery,
    ScheduleUpdate,
    TriggerRequest,
)

router = APIRouter(prefix="/schedules", tags=["schedules"])


@router.get("", response_model=SchedulePage, responses=responses(422))
async def list_schedules(
    engine: EngineDep, query: Annotated[ScheduleQuery, Query()]
) -> SchedulePage:
    """Schedules, oldest first; filter by workflow, enabled and paused; ``next_cursor`` pages."""
    return await management.list_schedules(engine, query)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleDetail,
    responses=responses(404, 409, 422),
)
async def create_schedule(engine: EngineDep, spec: ScheduleCreate) -> ScheduleDetail:
    """Create the schedule of a workflow (one per workflow): a cron expression or an interval."""
    return await management.create_schedule(engine, spec)


add_item_routes(
    router,
    Item(
        noun="schedule",
        id_type=ScheduleId,
        model=ScheduleDetail,
        patch_model=ScheduleUpdate,
        get=management.get_schedule,
        update=management.update_schedule,
        delete=management.delete_schedule,
    ),
    {
        "get": "The schedule with its description, next 5 fire times and last 5 runs.",
        "update": "Change some fields; a new timing applies from now on (nothing before it fires).",
        "delete": "Delete the schedule and its run history.",
    },
)


@router.post("/{schedule_id}/pause", response_model=ScheduleDetail, responses=responses(404, 422))
async def pause_schedule(
    engine: EngineDep, schedule_id: ScheduleId, request: PauseRequest | None = None
) -> ScheduleDetail:
    """Pause, with a note and optionally ``until`` an instant (it then resumes by itself).

    Occurrences during the pause are recorded as skipped ('paused'); pausing a paused schedule
    changes its note and end.
    """
    return await management.pause_schedule(engine, schedule_id, request or PauseRequest())


@router.post(
    "/{schedule_id}/resume", response_model=ScheduleDetail, responses=responses(404, 409, 422)
)
async def resume_schedule(engine: EngineDep, schedule_id: ScheduleId) -> ScheduleDetail:
    """End a pause now (409 when the schedule is not paused)."""
    return await management.resume_schedule(engine, schedule_id)


@router.post(
    "/{schedule_id}/trigger",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Run,
    responses=responses(404, 409, 422),
)
async def trigger_schedule(
    engine: EngineDep, schedule_id: ScheduleId, request: TriggerRequest | None = None
) -> Run:
    """Run now, outside the schedule: a pending 'manual' run the dispatcher sends at once.

    It runs even while the schedule is paused or disabled, and obeys the overlap policy unless
    ``ignore_overlap``.
    """
    return await management.trigger_schedule(engine, schedule_id, request or TriggerRequest())


@router.post(
    "/{schedule_id}/backfill",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BackfillResult,
    responses=responses(404, 409, 422),
)
async def backfill_schedule(
    engine: EngineDep, schedule_id: ScheduleId, request: BackfillRequest
) -> BackfillResult:
    """A run for each occurrence between ``start`` and ``end`` (at most 1000; none twice).

    The runs obey the schedule's overlap policy: with 'skip', a run that finds another of the
    schedule in flight is skipped; ``ignore_overlap`` runs them all.
    """
    return await management.backfill_schedule(engine, schedule_id, request)


@router.get("/{schedule_id}/runs", response_model=RunPage, responses=responses(404, 422))
async def list_schedule_runs(
    engine: EngineDep, schedule_id: ScheduleId, query: Annotated[RunQuery, Query()]
) -> RunPage:
    """The schedule's runs, newest occurrence first; filter by status, kind and time."""
    return await management.list_runs(engine, query, schedule_id)
