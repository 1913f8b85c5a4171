"""Logging in and out of the status page.

The form takes one of ``SCHEDULER_API_TOKENS`` and answers with the session cookie (HttpOnly,
SameSite=Strict, scoped to the page's path, Secure when served over https). The form itself is
guarded by a double-submit token (a random cookie and the same value in the form), so another
site cannot log a browser in under a token of its choosing. A one-time code (``dev --demo``
prints a link with one) logs in once, without the form.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from keeperhub_scheduler.ui.session import SESSION_COOKIE
from keeperhub_scheduler.ui.web import (
    BadForm,
    Viewer,
    check_csrf,
    page,
    read_form,
    redirect,
    safe_next,
    ui_state,
    viewer,
)

LOGIN_COOKIE = "khs_login"
router = APIRouter()


def _cookie_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/") + "/ui"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_form(request: Request, *, next_path: str, error: str | None, status: int) -> Response:
    guard = secrets.token_urlsafe(18)
    response = page(
        request, "login.html", status=status, next_path=next_path, guard=guard, error=error
    )
    response.set_cookie(
        LOGIN_COOKIE,
        guard,
        max_age=3600,
        path=_cookie_path(request),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


def _logged_in(request: Request, cookie: str, next_path: str) -> Response:
    response = redirect(request, safe_next(next_path))
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=ui_state(request).keys.lifetime,
        path=_cookie_path(request),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path=_cookie_path(request))
    return response


@router.get("/login")
async def login_page(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    return _login_form(request, next_path=safe_next(next), error=None, status=200)


@router.post("/login")
async def login(request: Request) -> Response:
    try:
        form = await read_form(request)
    except BadForm:
        return _login_form(request, next_path="/", error="The form could not be read.", status=400)
    next_path = safe_next(form.get("next"))
    guard = request.cookies.get(LOGIN_COOKIE, "")
    if not guard or not hmac.compare_digest(guard.encode(), form.get("guard", "").encode()):
        return _login_form(
            request,
            next_path=next_path,
            error="The form expired or came from another page; try again.",
            status=403,
        )
    cookie = ui_state(request).keys.mint(form.get("token", "").strip())
    if cookie is None:
        return _login_form(
            request,
            next_path=next_path,
            error="That is not one of the API's tokens (SCHEDULER_API_TOKENS).",
            status=401,
        )
    return _logged_in(request, cookie, next_path)


@router.get("/login/once")
async def login_once(request: Request, code: Annotated[str | None, Query()] = None) -> Response:
    state = ui_state(request)
    token = state.codes.redeem(code) if state.codes is not None else None
    cookie = state.keys.mint(token) if token is not None else None
    if cookie is None:
        return _login_form(
            request,
            next_path="/",
            error="This login link was used already or has expired: log in with the token.",
            status=401,
        )
    return _logged_in(request, cookie, "/")


@router.post("/logout")
async def logout(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
    try:
        check_csrf(who, await read_form(request))
    except BadForm:
        return redirect(request, "/")
    response = redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path=_cookie_path(request))
    return response
