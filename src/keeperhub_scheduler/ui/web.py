"""What every status page response shares: templates (autoescaped), security headers, who is
asking (session cookie or bearer token), the CSRF check and bounded form parsing.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from keeperhub_scheduler.api.auth import token_matches
from keeperhub_scheduler.management.models import QueueDepth
from keeperhub_scheduler.management.status import probe_queue_depth
from keeperhub_scheduler.transport.base import DepthProbe
from keeperhub_scheduler.ui.session import (
    SESSION_COOKIE,
    LoginCodes,
    Session,
    SessionKeys,
    csrf_matches,
)

# No inline script or style anywhere: scripts and styles come from /ui/static only. Data the
# scripts need is in <script type="application/json"> blocks (never executed) or fetched.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MAX_FORM_BYTES = 16_384
QUEUE_DEPTH_SECONDS = 5.0  # one SQS question per few seconds, whatever the number of viewers
_NEXT = re.compile(r"^/[A-Za-z0-9/_.~%=&?+:-]{0,500}$")


class LoginRequired(Exception):
    """No valid session or token: an HTML page sends the browser to the login form."""


class CsrfRefused(Exception):
    """A state-changing form came without this session's CSRF token."""


class BadForm(Exception):
    """The body is not a small url-encoded form."""


@dataclass
class QueueCache:
    probe: DepthProbe | None
    at: float = 0.0
    value: QueueDepth | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def read(self) -> QueueDepth | None:
        if self.probe is None:
            return None
        async with self.lock:
            # None (no queue to ask) is an answer too: kept as long as a count.
            if not self.at or time.monotonic() - self.at > QUEUE_DEPTH_SECONDS:
                self.value = await probe_queue_depth(self.probe)
                self.at = time.monotonic()
            return self.value


@dataclass
class UiState:
    tokens: tuple[bytes, ...]  # as api.auth compares them
    keys: SessionKeys
    codes: LoginCodes | None
    queue: QueueCache


@dataclass(frozen=True)
class Viewer:
    session: Session | None  # None: a bearer token (not a browser; no CSRF to check)

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


def ui_state(request: Request) -> UiState:
    state: UiState = request.app.state.ui
    return state


def base_path(request: Request) -> str:
    """Where the status page is, behind any prefix the proxy strips (``--root-path``)."""
    return str(request.scope.get("root_path", "")).rstrip("/") + "/ui"


async def viewer(request: Request) -> Viewer:
    state = ui_state(request)
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        if token_matches(header[7:].strip().encode(), state.tokens):
            return Viewer(None)
        raise LoginRequired
    session = state.keys.open(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequired
    return Viewer(session)


def check_csrf(who: Viewer, form: dict[str, str]) -> None:
    if who.session is not None and not csrf_matches(who.session, form.get("csrf")):
        raise CsrfRefused


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form of at most ``MAX_FORM_BYTES``: each field's first value."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadForm
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        raise BadForm
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadForm
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=30)
    except (UnicodeDecodeError, ValueError):
        raise BadForm from None
    return {name: values[0] for name, values in fields.items()}


def safe_next(value: str | None) -> str:
    """A path inside the status page to return to after logging in (never another site)."""
    if value and _NEXT.match(value) and "//" not in value and ".." not in value:
        return value
    return "/"


# --- rendering --------------------------------------------------------------------------------
def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _between(first: datetime | None, second: datetime | None) -> str:
    if first is None or second is None:
        return "-"
    return _seconds((second - first).total_seconds())


TEMPLATES = Environment(
    loader=PackageLoader("keeperhub_scheduler.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(when=_when, ago=_ago, seconds=_seconds, between=_between, q=quote)


def page(
    request: Request, template: str, *, status: int = 200, who: Viewer | None = None, **context: Any
) -> HTMLResponse:
    base = base_path(request)
    html = TEMPLATES.get_template(template).render(
        base=base, static=f"{base}/static", who=who, **context
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def data(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status, headers=SECURITY_HEADERS)


def redirect(request: Request, path: str) -> RedirectResponse:
    """303 to ``path`` inside the status page (a POST's answer is then a GET)."""
    return RedirectResponse(base_path(request) + path, status_code=303, headers=SECURITY_HEADERS)


def login_required_answer(request: Request) -> Response:
    """HTML pages go to the login form (and come back after it); data and forms get a 401."""
    if request.method == "GET" and not request.url.path.endswith(".json"):
        inside = request.url.path[len(base_path(request)) :] or "/"
        target = safe_next(inside + (f"?{request.url.query}" if request.url.query else ""))
        return redirect(request, f"/login?next={quote(target, safe='')}")
    if request.url.path.endswith(".json"):
        return data({"detail": "log in first"}, 401)
    message = "Your session has ended. Log in again, then repeat the action."
    return page(request, "message.html", status=401, title="Log in first", message=message)
