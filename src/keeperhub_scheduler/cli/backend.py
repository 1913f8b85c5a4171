"""Where the management CLI sends its commands: the database, or the REST API.

One protocol, two implementations with the same answers (the API's JSON): ``DatabaseBackend``
calls the management functions on ``DATABASE_URL``; ``ApiBackend`` calls ``/v1`` with a bearer
token. Every failure becomes a ``CliError`` carrying the exit code and one line to print.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from keeperhub_scheduler.cli.database import management_database
from keeperhub_scheduler.config import Settings, load_settings

# Only for annotations: httpx, SQLAlchemy and the request models load when a command runs, so that
# `--help` stays fast (bench/startup.py; tests/cli/test_first_steps.py checks what --help loads).
if TYPE_CHECKING:
    import httpx
    from pydantic import BaseModel
    from sqlalchemy.ext.asyncio import AsyncEngine

    from keeperhub_scheduler.management.models import (
        BackfillRequest,
        PauseRequest,
        PreviewRequest,
        RunQuery,
        ScheduleCreate,
        ScheduleQuery,
        ScheduleUpdate,
        TriggerRequest,
        WorkflowCreate,
        WorkflowUpdate,
    )

Json = dict[str, Any]

# Exit codes (documented in cli.manage's docstring).
FAILED, BAD_INPUT, NOT_FOUND, CONFLICT = 1, 2, 3, 4


class CliError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Backend(Protocol):
    async def list_schedules(self, query: ScheduleQuery) -> Json: ...
    async def get_schedule(self, schedule_id: str) -> Json: ...
    async def create_schedule(self, spec: ScheduleCreate) -> Json: ...
    async def update_schedule(self, schedule_id: str, patch: ScheduleUpdate) -> Json: ...
    async def delete_schedule(self, schedule_id: str) -> None: ...
    async def pause(self, schedule_id: str, request: PauseRequest) -> Json: ...
    async def resume(self, schedule_id: str) -> Json: ...
    async def trigger(self, schedule_id: str, request: TriggerRequest) -> Json: ...
    async def backfill(self, schedule_id: str, request: BackfillRequest) -> Json: ...
    async def preview(self, request: PreviewRequest) -> Json: ...
    async def list_runs(self, query: RunQuery, schedule_id: str | None) -> Json: ...
    async def get_run(self, run_id: str) -> Json: ...
    async def status(self) -> Json: ...
    async def create_workflow(self, spec: WorkflowCreate) -> Json: ...
    async def update_workflow(self, workflow_id: str, patch: WorkflowUpdate) -> Json: ...
    async def delete_workflow(self, workflow_id: str) -> None: ...


def _json(model: BaseModel) -> Json:
    return model.model_dump(mode="json")


class DatabaseBackend:
    """The management functions, straight on the database (``DATABASE_URL``)."""

    def __init__(self, settings: Settings) -> None:
        from keeperhub_scheduler import management  # with SQLAlchemy: when a command runs

        self.management = management
        self.settings = settings
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        # Opened on first use: `schedules preview` needs no database, so it needs no DATABASE_URL.
        if self._engine is None:
            from keeperhub_scheduler.db.engine import create_engine

            self._engine = create_engine(management_database(self.settings), pool_size=2)
        return self._engine

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    async def list_schedules(self, query: ScheduleQuery) -> Json:
        return _json(await self.management.list_schedules(self.engine, query))

    async def get_schedule(self, schedule_id: str) -> Json:
        return _json(await self.management.get_schedule(self.engine, schedule_id))

    async def create_schedule(self, spec: ScheduleCreate) -> Json:
        return _json(await self.management.create_schedule(self.engine, spec))

    async def update_schedule(self, schedule_id: str, patch: ScheduleUpdate) -> Json:
        return _json(await self.management.update_schedule(self.engine, schedule_id, patch))

    async def delete_schedule(self, schedule_id: str) -> None:
        await self.management.delete_schedule(self.engine, schedule_id)

    async def pause(self, schedule_id: str, request: PauseRequest) -> Json:
        return _json(await self.management.pause_schedule(self.engine, schedule_id, request))

    async def resume(self, schedule_id: str) -> Json:
        return _json(await self.management.resume_schedule(self.engine, schedule_id))

    async def trigger(self, schedule_id: str, request: TriggerRequest) -> Json:
        return _json(await self.management.trigger_schedule(self.engine, schedule_id, request))

    async def backfill(self, schedule_id: str, request: BackfillRequest) -> Json:
        return _json(await self.management.backfill_schedule(self.engine, schedule_id, request))

    async def preview(self, request: PreviewRequest) -> Json:
        return _json(self.management.preview(request))

    async def list_runs(self, query: RunQuery, schedule_id: str | None) -> Json:
        return _json(await self.management.list_runs(self.engine, query, schedule_id))

    async def get_run(self, run_id: str) -> Json:
        return _json(await self.management.get_run(self.engine, run_id))

    async def status(self) -> Json:
        probe = self.management.queue_depth_probe(self.settings, self.engine)
        return _json(await self.management.scheduler_status(self.engine, probe))

    async def create_workflow(self, spec: WorkflowCreate) -> Json:
        return _json(await self.management.create_workflow(self.engine, spec))

    async def update_workflow(self, workflow_id: str, patch: WorkflowUpdate) -> Json:
        return _json(await self.management.update_workflow(self.engine, workflow_id, patch))

    async def delete_workflow(self, workflow_id: str) -> None:
        await self.management.delete_workflow(self.engine, workflow_id)


class ApiBackend:
    """The same operations over HTTP, against ``keeperhub-scheduler api``."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _call(self, method: str, path: str, body: BaseModel | None = None, **kw: Any) -> Any:
        if body is not None:
            kw["json"] = body.model_dump(mode="json", exclude_unset=True)
        import httpx  # loaded by a command that talks to the API, not by --help

        try:
            answer = await self.client.request(method, path, **kw)
        except httpx.HTTPError as error:
            raise CliError(
                FAILED, f"cannot reach the API at {self.client.base_url}: {error}"
            ) from None
        if answer.status_code >= 400:
            raise _api_error(answer)
        return answer.json() if answer.content else None

    async def list_schedules(self, query: ScheduleQuery) -> Json:
        return dict(await self._call("GET", "/v1/schedules", params=_params(query)))

    async def get_schedule(self, schedule_id: str) -> Json:
        return dict(await self._call("GET", f"/v1/schedules/{_segment(schedule_id)}"))

    async def create_schedule(self, spec: ScheduleCreate) -> Json:
        return dict(await self._call("POST", "/v1/schedules", spec))

    async def update_schedule(self, schedule_id: str, patch: ScheduleUpdate) -> Json:
        return dict(await self._call("PATCH", f"/v1/schedules/{_segment(schedule_id)}", patch))

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._call("DELETE", f"/v1/schedules/{_segment(schedule_id)}")

    async def pause(self, schedule_id: str, request: PauseRequest) -> Json:
        return dict(
            await self._call("POST", f"/v1/schedules/{_segment(schedule_id)}/pause", request)
        )

    async def resume(self, schedule_id: str) -> Json:
        return dict(await self._call("POST", f"/v1/schedules/{_segment(schedule_id)}/resume"))

    async def trigger(self, schedule_id: str, request: TriggerRequest) -> Json:
        path = f"/v1/schedules/{_segment(schedule_id)}/trigger"
        return dict(await self._call("POST", path, request))

    async def backfill(self, schedule_id: str, request: BackfillRequest) -> Json:
        path = f"/v1/schedules/{_segment(schedule_id)}/backfill"
        return dict(await self._call("POST", path, request))

    async def preview(self, request: PreviewRequest) -> Json:
        return dict(await self._call("POST", "/v1/preview", request))

    async def list_runs(self, query: RunQuery, schedule_id: str | None) -> Json:
        path = f"/v1/schedules/{_segment(schedule_id)}/runs" if schedule_id else "/v1/runs"
        return dict(await self._call("GET", path, params=_params(query)))

    async def get_run(self, run_id: str) -> Json:
        return dict(await self._call("GET", f"/v1/runs/{_segment(run_id)}"))

    async def status(self) -> Json:
        return dict(await self._call("GET", "/v1/status"))

    async def create_workflow(self, spec: WorkflowCreate) -> Json:
        return dict(await self._call("POST", "/v1/workflows", spec))

    async def update_workflow(self, workflow_id: str, patch: WorkflowUpdate) -> Json:
        return dict(await self._call("PATCH", f"/v1/workflows/{_segment(workflow_id)}", patch))

    async def delete_workflow(self, workflow_id: str) -> None:
        await self._call("DELETE", f"/v1/workflows/{_segment(workflow_id)}")


def _segment(ident: str) -> str:
    """An id as one path segment, whatever it contains (the API then answers 422 or 404)."""
    return quote(ident, safe="")


def _params(query: BaseModel) -> dict[str, Any]:
    return query.model_dump(mode="json", exclude_none=True)


def _api_error(answer: httpx.Response) -> CliError:
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if answer.status_code == 422 and isinstance(detail, list):
        text = "; ".join(f"{item.get('field')}: {item.get('message')}" for item in detail)
        return CliError(BAD_INPUT, text)
    message = detail if isinstance(detail, str) else f"HTTP {answer.status_code}"
    if answer.status_code == 401:
        return CliError(
            BAD_INPUT, f"the API refused the token ({message}); check SCHEDULER_API_TOKEN"
        )
    codes = {404: NOT_FOUND, 409: CONFLICT}
    return CliError(codes.get(answer.status_code, FAILED), message)


@asynccontextmanager
async def open_backend(api_url: str | None, token: str | None) -> AsyncIterator[Backend]:
    """The API backend when ``api_url`` is given, else the database backend."""
    if api_url:
        if not token:
            raise CliError(BAD_INPUT, "--api-url needs a token: --token or SCHEDULER_API_TOKEN")
        import httpx  # loaded by a command that talks to the API, not by --help

        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            base_url=api_url.rstrip("/"), headers=headers, timeout=30.0
        ) as client:
            yield ApiBackend(client)
        return
    backend = DatabaseBackend(load_settings())
    try:
        yield backend
    finally:
        await backend.close()
