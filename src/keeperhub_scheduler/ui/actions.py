"""The schedule page's buttons: pause, resume, run now, backfill. Each is confirmed first.

A button posts its form (with the session's CSRF token); the answer is a confirmation page that
says what will happen (for a backfill: every occurrence it would create, and those it keeps)
and posts the same fields again with ``confirmed``. Only that second post calls the management
operation, the same one the REST API and the CLI call. Errors come back on the schedule page,
in words, with what was typed kept.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from keeperhub_scheduler import management
from keeperhub_scheduler.api.deps import EngineDep, ScheduleId
from keeperhub_scheduler.errors import ConflictError, InvalidScheduleError, NotFoundError
from keeperhub_scheduler.management.models import (
    BackfillRequest,
    PauseRequest,
    TriggerRequest,
    error_message,
    field_name,
)
from keeperhub_scheduler.ui.pages import not_found, schedule_page
from keeperhub_scheduler.ui.web import (
    BadForm,
    Viewer,
    check_csrf,
    page,
    read_form,
    redirect,
    viewer,
)

router = APIRouter()
Who = Annotated[Viewer, Depends(viewer)]
ACTIONS = ("pause", "resume", "trigger", "backfill")


class FormError(Exception):
    pass


def _instant(form: dict[str, str], name: str) -> datetime | None:
    """A ``datetime-local`` field, read as UTC (the form says so)."""
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise FormError(f"{name}: not a date and time (YYYY-MM-DDTHH:MM)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _text(form: dict[str, str], name: str) -> str | None:
    return form.get(name, "").strip() or None


def _request(action: str, form: dict[str, str]) -> BaseModel | None:
    """The management request the form stands for (pydantic checks every bound)."""
    try:
        if action == "pause":
            return PauseRequest(note=_text(form, "note"), until=_instant(form, "until"))
        if action == "trigger":
            return TriggerRequest(
                reason=_text(form, "reason"), ignore_overlap=form.get("ignore_overlap") == "on"
            )
        if action == "backfill":
            return BackfillRequest.model_validate(
                {
                    "start": _instant(form, "start"),
                    "end": _instant(form, "end"),
                    "reason": _text(form, "reason"),
                    "ignore_overlap": form.get("ignore_overlap") == "on",
                }
            )
    except ValidationError as error:
        first = error.errors()[0]
        raise FormError(
            f"{field_name(tuple(first['loc']))}: {error_message(first['msg'])}"
        ) from None
    return None


@router.post("/schedules/{schedule_id}/{action}")
async def act(
    request: Request, engine: EngineDep, who: Who, schedule_id: ScheduleId, action: str
) -> Response:
    if action not in ACTIONS:
        return page(request, "message.html", status=404, who=who, title="Not found",
                    message="There is no such action.")  # fmt: skip
    try:
        form = await read_form(request)
    except BadForm:
        return page(request, "message.html", status=400, who=who, title="Bad form",
                    message="The form could not be read.")  # fmt: skip
    check_csrf(who, form)
    kept = {name: form.get(name, "") for name in ("note", "until", "reason", "start", "end")}
    kept["ignore_overlap"] = form.get("ignore_overlap", "")
    try:
        body = _request(action, form)
        if form.get("confirmed") != "1":
            return await _confirm(request, engine, who, schedule_id, action, body, kept)
        return await _perform(request, engine, schedule_id, action, body)
    except NotFoundError:
        return not_found(request, who, "There is no such schedule (it may have been deleted).")
    except (FormError, InvalidScheduleError, ConflictError) as error:
        return await schedule_page(
            request, engine, who, schedule_id, error=str(error), form=kept, status=422
        )


async def _confirm(
    request: Request,
    engine: Any,
    who: Viewer,
    schedule_id: str,
    action: str,
    body: BaseModel | None,
    kept: dict[str, str],
) -> Response:
    detail = await management.get_schedule(engine, schedule_id, fires=0, runs=0)
    preview = None
    if isinstance(body, BackfillRequest):
        preview = await management.preview_backfill(engine, schedule_id, body)
    return page(
        request, "confirm.html", who=who, s=detail, action=action, body=body, kept=kept,
        preview=preview,
    )  # fmt: skip


async def _perform(
    request: Request, engine: Any, schedule_id: str, action: str, body: BaseModel | None
) -> Response:
    if isinstance(body, PauseRequest):
        await management.pause_schedule(engine, schedule_id, body)
        return redirect(request, f"/schedules/{schedule_id}?done=paused")
    if isinstance(body, TriggerRequest):
        created = await management.trigger_schedule(engine, schedule_id, body)
        return redirect(request, f"/runs/{created.id}")
    if isinstance(body, BackfillRequest):
        await management.backfill_schedule(engine, schedule_id, body)
        return redirect(request, f"/schedules/{schedule_id}?done=backfilled")
    await management.resume_schedule(engine, schedule_id)
    return redirect(request, f"/schedules/{schedule_id}?done=resumed")
