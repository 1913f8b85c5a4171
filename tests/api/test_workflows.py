"""``/v1/workflows``: KeeperHub's schedule sync, and workflows for standalone use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.engine import create_engine
from keeperhub_scheduler.db.migrate import upgrade
from tests.management.world import add_runs, add_workflow, api_client, utc

KEEPERHUB_SCHEMA = Path(__file__).parent.parent / "fixtures" / "keeperhub_schema.sql"


def trigger(cron: str, zone: str = "UTC") -> list[dict[str, Any]]:
    config = {"triggerType": "Schedule", "scheduleCron": cron, "scheduleTimezone": zone}
    return [
        {"id": "t", "type": "trigger", "data": {"type": "trigger", "config": config}},
        {"id": "a", "data": {"type": "action", "config": {"actionType": "HTTP"}}},
    ]


async def test_sync_follows_the_trigger_node(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    workflow_id = await add_workflow(engine)
    url = f"/v1/workflows/{workflow_id}/schedule"

    async def sync(nodes: list[dict[str, Any]]) -> dict[str, Any]:
        answer = await client.put(url, json={"nodes": nodes})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    created = await sync(trigger("0 9 * * 1-5", "Europe/Berlin"))
    assert created["action"] == "created"
    assert created["schedule"]["workflow_id"] == workflow_id
    assert created["schedule"]["timezone"] == "Europe/Berlin"
    assert created["schedule"]["description"] == "At 09:00, Monday through Friday"
    assert (await sync(trigger("0 9 * * 1-5", "Europe/Berlin")))["action"] == "unchanged"
    updated = await sync(trigger("30 6 * * *", "Europe/Berlin"))
    assert updated["action"] == "updated"
    assert updated["schedule"]["id"] == created["schedule"]["id"]
    assert await sync([]) == {"action": "deleted", "schedule": None}
    assert await sync([]) == {"action": "none", "schedule": None}


async def test_sync_errors(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    workflow_id = await add_workflow(engine)
    bad = await client.put(
        f"/v1/workflows/{workflow_id}/schedule", json={"nodes": trigger("60 * * * *")}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"] == [
        {"field": "nodes", "message": "scheduleCron: minute 60 is out of range 0-59"}
    ]
    zone = await client.put(
        f"/v1/workflows/{workflow_id}/schedule", json={"nodes": trigger("* * * * *", "Moon/Base")}
    )
    assert zone.json()["detail"] == [
        {"field": "nodes", "message": "scheduleTimezone: unknown time zone 'Moon/Base'"}
    ]
    missing = await client.put(
        "/v1/workflows/wf_nope/schedule", json={"nodes": trigger("* * * * *")}
    )
    assert missing.status_code == 404
    assert missing.json() == {"detail": "workflow 'wf_nope' not found"}
    not_a_list = await client.put(f"/v1/workflows/{workflow_id}/schedule", json={"nodes": {}})
    assert not_a_list.json()["detail"] == [
        {"field": "nodes", "message": "Input should be a valid list"}
    ]


async def test_workflows_create_read_update_delete(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    created = await client.post("/v1/workflows", json={"id": "wf_report", "name": "Report"})
    assert created.status_code == 201, created.text
    assert created.json()["enabled"] is True
    again = await client.post("/v1/workflows", json={"id": "wf_report", "name": "Again"})
    assert again.status_code == 409
    assert again.json() == {"detail": "workflow 'wf_report' already exists"}
    bad_id = await client.post("/v1/workflows", json={"id": "../etc", "name": "x"})
    assert bad_id.json()["detail"][0]["field"] == "id"

    off = await client.patch("/v1/workflows/wf_report", json={"enabled": False, "name": "R2"})
    assert (off.json()["enabled"], off.json()["name"]) == (False, "R2")
    assert (await client.get("/v1/workflows/wf_report")).json()["name"] == "R2"
    assert (await client.patch("/v1/workflows/wf_nope", json={"enabled": True})).status_code == 404

    schedule = await client.post(
        "/v1/schedules", json={"workflow_id": "wf_report", "cron_expression": "* * * * *"}
    )
    [run_id] = await add_runs(
        engine, schedule.json()["id"], "wf_report", [utc("2026-01-01T00:00:00Z")]
    )
    deleted = await client.delete("/v1/workflows/wf_report")
    assert deleted.status_code == 204
    assert (await client.get(f"/v1/schedules/{schedule.json()['id']}")).status_code == 404
    assert (await client.get(f"/v1/runs/{run_id}")).status_code == 404
    assert (await client.get("/v1/workflows/wf_report")).status_code == 404
    assert (await client.delete("/v1/workflows/wf_report")).status_code == 404


@pytest.fixture
async def keeperhub_engine(empty_database_url: str) -> AsyncIterator[tuple[AsyncEngine, str]]:
    """A database with KeeperHub's own tables (workflows need an owner), then migrated."""
    with psycopg.connect(empty_database_url, autocommit=True) as connection:
        connection.execute(KEEPERHUB_SCHEMA.read_text())  # type: ignore[arg-type]
        connection.execute("INSERT INTO users (id, email) VALUES ('u1', 'ops@example.com')")
        connection.execute(
            "INSERT INTO workflows (id, name, user_id) VALUES ('wf_kh', 'Theirs', 'u1')"
        )
    upgrade(empty_database_url)
    engine = create_engine(empty_database_url)
    yield engine, empty_database_url
    await engine.dispose()


async def test_on_keeperhubs_database_workflows_are_keeperhubs(
    keeperhub_engine: tuple[AsyncEngine, str],
) -> None:
    engine, url = keeperhub_engine
    async with api_client(engine, url) as client:
        answer = await client.post("/v1/workflows", json={"id": "wf_new", "name": "Mine"})
        assert answer.status_code == 409
        assert "KeeperHub" in answer.json()["detail"]
        # Scheduling KeeperHub's own workflow works, through the sync as through create.
        synced = await client.put(
            "/v1/workflows/wf_kh/schedule", json={"nodes": trigger("0 3 * * *")}
        )
        assert synced.json()["action"] == "created"
        assert (
            await client.patch("/v1/workflows/wf_kh", json={"enabled": True})
        ).status_code == 200
