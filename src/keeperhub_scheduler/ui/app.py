"""``mount_ui``: the status page's routes, static files and error pages on the API's app."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.management.status import queue_depth_probe
from keeperhub_scheduler.ui import actions, login, pages
from keeperhub_scheduler.ui.session import LoginCodes, SessionKeys
from keeperhub_scheduler.ui.web import (
    CsrfRefused,
    LoginRequired,
    QueueCache,
    UiState,
    login_required_answer,
    page,
)

PREFIX = "/ui"


def mount_ui(app: FastAPI, settings: Settings, codes: LoginCodes | None = None) -> None:
    """Serve the status page under ``/ui`` on ``app`` (routes, static files, error pages)."""
    app.state.ui = UiState(
        tokens=tuple(token.encode() for token in settings.api_tokens),
        keys=SessionKeys(settings.api_tokens),
        codes=codes,
        queue=QueueCache(queue_depth_probe(settings, app.state.engine)),
    )
    for module in (login, pages, actions):
        app.include_router(module.router, prefix=PREFIX, include_in_schema=False)
    app.mount(
        f"{PREFIX}/static",
        StaticFiles(packages=[("keeperhub_scheduler.ui", "static")]),
        name="ui-static",
    )
    app.add_exception_handler(LoginRequired, _login_required)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfRefused, _csrf_refused)  # type: ignore[arg-type]


async def _login_required(request: Request, _: LoginRequired) -> Response:
    return login_required_answer(request)


async def _csrf_refused(request: Request, _: CsrfRefused) -> Response:
    return page(
        request,
        "message.html",
        status=403,
        title="Refused",
        message="This form did not carry this session's token (CSRF): nothing was changed."
        " Open the page again and repeat the action.",
    )
