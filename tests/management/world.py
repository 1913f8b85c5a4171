"""Shared builders and fixtures of the management, API and CLI tests.

Fixtures here are imported by name into each directory's conftest; ``any_database_url`` and
``any_engine``, which run a test on PostgreSQL and on SQLite, are every test's (tests/conftest.py).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.api import create_app
from keeperhub_scheduler.config import Settings, load_settings
from keeperhub_scheduler.db.engine import create_engine
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.runs import new_run_id

TOKEN = "test-token-0123456789"
R = schedule_runs
S = workflow_schedules


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "scheduler_api_tokens": TOKEN,
        "sqs_queue_url": None,
    }
    return load_settings(**(values | overrides))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def api_client(engine: AsyncEngine, database_url: str, **overrides: Any) -> httpx.AsyncClient:
    app = create_app(settings_for(database_url, **overrides), engine)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://scheduler.test",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


@pytest.fixture
async def client(engine: AsyncEngine, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine, database_url) as client:
        yield client


@pytest.fixture
async def any_client(
    any_engine: AsyncEngine, any_database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(any_engine, any_database_url) as client:
        yield client


# --- rows -------------------------------------------------------------------------------------
def new_workflow_id() -> str:
    return f"wf_{secrets.token_hex(6)}"


async def add_workflow(engine: AsyncEngine, *, enabled: bool = True) -> str:
    workflow_id = new_workflow_id()
    async with engine.begin() as connection:
        await connection.execute(
            insert(workflows).values(id=workflow_id, name="test workflow", enabled=enabled)
        )
    return workflow_id


async def add_runs(
    engine: AsyncEngine,
    schedule_id: str,
    workflow_id: str,
    scheduled: list[datetime],
    **values: Any,
) -> list[str]:
    """Runs of the schedule at the given occurrences (default: succeeded, finished then)."""
    rows = []
    for at in scheduled:
        row = {
            "id": new_run_id(),
            "schedule_id": schedule_id,
            "workflow_id": workflow_id,
            "kind": "schedule",
            "scheduled_for": at,
            "due_at": at,
            "status": "succeeded",
            "created_at": at,
            "enqueued_at": at + timedelta(seconds=1),
            "finished_at": at + timedelta(seconds=2),
        }
        rows.append(row | values)
    async with engine.begin() as connection:
        await connection.execute(insert(R), rows)
    return [row["id"] for row in rows]


async def schedule_columns(engine: AsyncEngine, schedule_id: str) -> dict[str, Any]:
    async with engine.connect() as connection:
        row = (await connection.execute(select(S).where(S.c.id == schedule_id))).one()
    return dict(row._mapping)


async def run_columns(engine: AsyncEngine, schedule_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(R).where(R.c.schedule_id == schedule_id).order_by(R.c.scheduled_for)
        )
        return [dict(row._mapping) for row in rows.all()]


async def set_schedule(engine: AsyncEngine, schedule_id: str, **values: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(S).where(S.c.id == schedule_id).values(**values))


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
