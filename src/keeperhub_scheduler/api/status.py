"""``/v1/status`` and ``/v1/preview``: the scheduler at a glance, and fire times before saving."""

from __future__ import annotations

from fastapi import APIRouter

from keeperhub_scheduler import management
from keeperhub_scheduler.api.deps import EngineDep, SettingsDep
from keeperhub_scheduler.api.errors import responses
from keeperhub_scheduler.management.models import Preview, PreviewRequest, Status

router = APIRouter(tags=["status"])


@router.get("/status", response_model=Status)
async def status(engine: EngineDep, settings: SettingsDep) -> Status:
    """Runs by status, the oldest pending run, dispatch lag (p50/p99 over 5 minutes), failures
    in the last hour, schedules, and the queue's depth when an SQS queue is configured."""
    probe = management.queue_depth_probe(settings, engine)
    return await management.scheduler_status(engine, probe)


@router.post("/preview", response_model=Preview, responses=responses(422))
async def preview(request: PreviewRequest) -> Preview:
    """The next fire times of an expression or interval in a zone, in UTC and local time, with
    each change of UTC offset flagged and DST adjustments explained."""
    return management.preview(request)
