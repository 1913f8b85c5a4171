"""The management API: ``create_app(settings)`` builds it, ``keeperhub-scheduler api`` serves it.

Everything under ``/v1`` needs a bearer token; ``/healthz`` (alive), ``/readyz`` (the database
answers), the OpenAPI document at ``/openapi.json`` and the interactive docs at ``/docs`` do not.
The status page is under ``/ui`` (``keeperhub_scheduler.ui``): its pages take the session cookie its
login form sets (or the same bearer token), ``/ui/login*`` and ``/ui/static`` need neither.
Three ASGI middlewares stand in front of the routes, outermost first: ``errors.CatchAll`` (any
unexpected error is a JSON 500 with a request id), ``guard.RequestGuard`` (the token for ``/v1``,
then the body-size limit for every path, before a body is read) and ``methods.AllowedMethods``
(OPTIONS and 405s list every method of a path).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Security
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.api import errors, runs, schedules, status, workflows
from keeperhub_scheduler.api.auth import bearer
from keeperhub_scheduler.api.deps import EngineDep
from keeperhub_scheduler.api.errors import CatchAll, responses
from keeperhub_scheduler.api.guard import RequestGuard
from keeperhub_scheduler.api.methods import AllowedMethods
from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.db.engine import create_engine, database_now
from keeperhub_scheduler.ui.app import mount_ui
from keeperhub_scheduler.ui.session import LoginCodes

log = logging.getLogger("keeperhub_scheduler.api")

VERSION = "1"


def create_app(
    settings: Settings, engine: AsyncEngine | None = None, login_codes: LoginCodes | None = None
) -> FastAPI:
    """The API on ``engine`` (default: one made from ``DATABASE_URL``, closed at shutdown), with
    the status page at ``/ui`` (``login_codes``: one-time login links, as ``dev`` prints)."""
    owned = engine is None
    database = engine or create_engine(settings.database_url.get_secret_value())
    if not settings.api_tokens:
        log.warning("SCHEDULER_API_TOKENS is empty: every /v1 request will be refused")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            await database.dispose()

    app = FastAPI(
        title="KeeperHub Scheduler",
        version=VERSION,
        description="Manage the schedules that run KeeperHub workflows, and their history.",
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.engine = database
    app.state.settings = settings
    errors.install(app)
    app.include_router(_health())
    v1 = APIRouter(
        prefix="/v1",
        # The token is checked by RequestGuard, before the body is read; this declares it.
        dependencies=[Security(bearer)],
        responses=responses(401, 413),
    )
    for module in (schedules, runs, workflows, status):
        v1.include_router(module.router)
    app.include_router(v1)
    mount_ui(app, settings, login_codes)
    # add_middleware puts each one outside those added before it.
    app.add_middleware(AllowedMethods, router=app.router)
    app.add_middleware(
        RequestGuard,
        tokens=settings.api_tokens,
        max_body_bytes=settings.scheduler_api_max_body_bytes,
    )
    app.add_middleware(CatchAll)
    return app


def _health() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process answers (no token needed)."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "The database does not answer"}})
    async def readyz(engine: EngineDep) -> JSONResponse:
        """The database answers (no token needed)."""
        try:
            async with engine.connect() as connection:
                await database_now(connection)
        except Exception as error:
            log.warning("not ready", extra={"error": type(error).__name__})
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return router
