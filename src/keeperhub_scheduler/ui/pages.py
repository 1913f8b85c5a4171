"""The status page's pages: overview, timeline (and its data), a schedule, a run.

Handlers only read: through ``management`` (schedules, runs, workflows) and the page queries of
``ui.overview`` and ``ui.timeline``. Actions are in ``ui.actions``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from keeperhub_scheduler import management
from keeperhub_scheduler.api.deps import EngineDep, RunId, ScheduleId
from keeperhub_scheduler.errors import NotFoundError, SchedulerError
from keeperhub_scheduler.management.models import RunQuery
from keeperhub_scheduler.runs import FINISHED
from keeperhub_scheduler.ui.overview import read_overview
from keeperhub_scheduler.ui.timeline import (
    STATES,
    WINDOWS,
    State,
    TimelineQuery,
    read_timeline,
    zones_in_use,
)
from keeperhub_scheduler.ui.verdicts import VERDICTS, verdict_of
from keeperhub_scheduler.ui.web import Viewer, data, page, ui_state, viewer

router = APIRouter()
Who = Annotated[Viewer, Depends(viewer)]
RUNS_PER_PAGE = 25
DONE = {
    "paused": "Paused.",
    "resumed": "Resumed.",
    "backfilled": "Backfill runs created; the dispatcher sends them now.",
}


@router.get("")
@router.get("/")
async def overview(request: Request, engine: EngineDep, who: Who) -> Response:
    summary = await read_overview(engine)
    queue = await ui_state(request).queue.read()
    return page(
        request, "overview.html", who=who, o=summary, queue=queue, verdicts=VERDICTS,
        chart={"x": summary.chart["x"], "series": {v: summary.chart[v] for v in VERDICTS}},
    )  # fmt: skip


Text = Annotated[str | None, Query(max_length=200)]


def _timeline_query(
    window: Text = None,
    end: Text = None,
    workflow: Text = None,
    state: Text = None,
    timezone: Text = None,
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> TimelineQuery:
    """The timeline's filters from the query string; anything unreadable falls back to a default."""
    instant: datetime | None = None
    if end:
        try:
            instant = datetime.fromisoformat(end.replace("Z", "+00:00"))
        except ValueError:
            instant = None
        if instant is not None and instant.tzinfo is None:
            instant = None
    return TimelineQuery(
        window=window if window in WINDOWS else "1h",
        end=instant,
        workflow=(workflow or "").strip()[:100] or None,
        state=_state(state),
        timezone=(timezone or "").strip()[:64] or None,
        page=max(1, min(page_number, 100_000)),
    )


def _state(value: str | None) -> State | None:
    return cast(State, value) if value in STATES else None


Timeline = Annotated[TimelineQuery, Depends(_timeline_query)]


@router.get("/timeline")
async def timeline(request: Request, engine: EngineDep, who: Who, query: Timeline) -> Response:
    given = {
        "window": query.window,
        "end": query.end.isoformat() if query.end else None,
        "workflow": query.workflow,
        "state": query.state,
        "timezone": query.timezone,
        "page": query.page if query.page > 1 else None,
    }
    source = urlencode({key: value for key, value in given.items() if value is not None})
    return page(
        request, "timeline.html", who=who, query=query, windows=list(WINDOWS), states=STATES,
        zones=await zones_in_use(engine), verdicts=VERDICTS, source=source,
    )  # fmt: skip


@router.get("/timeline.json")
async def timeline_data(engine: EngineDep, who: Who, query: Timeline) -> Response:
    return data(await read_timeline(engine, query))


def not_found(request: Request, who: Viewer, message: str) -> Response:
    return page(request, "message.html", status=404, who=who, title="Not found", message=message)


async def _workflow_name(engine: Any, workflow_id: str) -> str | None:
    try:
        return (await management.get_workflow(engine, workflow_id)).name
    except NotFoundError:
        return None


async def schedule_page(
    request: Request,
    engine: Any,
    who: Viewer,
    schedule_id: str,
    *,
    cursor: str | None = None,
    done: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The schedule with its next 10 fires, policies, actions and one page of its runs."""
    detail = await management.get_schedule(engine, schedule_id, fires=10, runs=0)
    try:
        runs = await management.list_runs(
            engine, RunQuery(limit=RUNS_PER_PAGE, cursor=cursor), schedule_id
        )
    except (SchedulerError, ValidationError):  # a cursor that is not ours: the first page
        runs = await management.list_runs(engine, RunQuery(limit=RUNS_PER_PAGE), schedule_id)
    return page(
        request, "schedule.html", status=status, who=who, s=detail, runs=runs,
        workflow_name=await _workflow_name(engine, detail.workflow_id), verdict_of=verdict_of,
        done=DONE.get(done or ""), error=error, form=form or {}, first_page=cursor is None,
    )  # fmt: skip


@router.get("/schedules/{schedule_id}")
async def schedule(
    request: Request,
    engine: EngineDep,
    who: Who,
    schedule_id: ScheduleId,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    try:
        return await schedule_page(request, engine, who, schedule_id, cursor=cursor, done=done)
    except NotFoundError:
        return not_found(request, who, "There is no such schedule (it may have been deleted).")


@router.get("/runs/{run_id}")
async def run(request: Request, engine: EngineDep, who: Who, run_id: RunId) -> Response:
    try:
        found = await management.get_run(engine, run_id)
    except NotFoundError:
        return not_found(request, who, "There is no such run (retention may have pruned it).")
    return page(
        request, "run.html", who=who, r=found, verdict=verdict_of(found.status),
        workflow_name=await _workflow_name(engine, found.workflow_id),
        finished=found.status in FINISHED,
    )  # fmt: skip
