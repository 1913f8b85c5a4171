"""The status page through its ASGI app (httpx), as a browser would call it: cookies, forms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from typing import Any

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler import management
from keeperhub_scheduler.api import create_app
from keeperhub_scheduler.db.tables import workflows
from keeperhub_scheduler.management.models import ScheduleCreate
from keeperhub_scheduler.ui.session import LoginCodes
from tests.management.world import TOKEN, new_workflow_id, settings_for

BASE = "http://scheduler.test"
XSS_NAME = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">"\'&'


@asynccontextmanager
async def page_client(
    engine: AsyncEngine,
    database_url: str,
    *,
    root_path: str = "",
    codes: LoginCodes | None = None,
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(database_url, **overrides), engine, codes)
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden field {name}"
    return found.group(1)


async def log_in(client: httpx.AsyncClient, token: str = TOKEN, prefix: str = "") -> str:
    """Log in through the form; the session's CSRF token (from a page's forms)."""
    form = await client.get(f"{prefix}/ui/login")
    answer = await client.post(
        f"{prefix}/ui/login",
        data={"token": token, "guard": hidden(form.text, "guard"), "next": "/"},
    )
    assert answer.status_code == 303, answer.text
    overview = await client.get(f"{prefix}/ui")
    assert overview.status_code == 200, overview.text
    return hidden(overview.text, "csrf")


async def add_named_workflow(engine: AsyncEngine, name: str) -> str:
    workflow_id = new_workflow_id()
    async with engine.begin() as connection:
        await connection.execute(insert(workflows).values(id=workflow_id, name=name, enabled=True))
    return workflow_id


async def new_schedule(engine: AsyncEngine, name: str = "nightly report", **spec: Any) -> str:
    workflow_id = await add_named_workflow(engine, name)
    values = {"cron_expression": "0 * * * *"} | spec
    created = await management.create_schedule(
        engine, ScheduleCreate(workflow_id=workflow_id, **values)
    )
    return created.id


class Markup(HTMLParser):
    """Every element with its attributes, to check what a page may and may not contain."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Markup()
    parser.feed(html)
    return parser.elements
