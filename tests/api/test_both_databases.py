"""The main paths of the API on both databases: PostgreSQL, and SQLite (the embedded mode)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.management.world import iso, utc


async def call(client: httpx.AsyncClient, method: str, path: str, expect: int, **kw: Any) -> Any:
    answer = await client.request(method, path, **kw)
    assert answer.status_code == expect, answer.text
    return answer.json() if answer.content else None


async def test_a_schedule_from_creation_to_deletion(any_client: httpx.AsyncClient) -> None:
    c = any_client
    await call(c, "POST", "/v1/workflows", 201, json={"id": "wf_a", "name": "A"})
    await call(c, "POST", "/v1/workflows", 201, json={"id": "wf_b", "name": "B"})
    first = await call(
        c, "POST", "/v1/schedules", 201,
        json={"workflow_id": "wf_a", "cron_expression": "0 * * * *", "timezone": "Asia/Kolkata"},
    )  # fmt: skip
    assert first["next_fire_times"][0]["utc_offset"] == "+05:30"
    second = await call(
        c, "POST", "/v1/schedules", 201, json={"workflow_id": "wf_b", "interval_seconds": 600}
    )
    await call(c, "POST", "/v1/schedules", 409, json={"workflow_id": "wf_b", "interval_seconds": 5})

    until = iso(datetime.now(UTC) + timedelta(days=1))
    paused = await call(
        c, "POST", f"/v1/schedules/{second['id']}/pause", 200, json={"note": "n", "until": until}
    )
    assert paused["paused"] is True
    listed = await call(c, "GET", "/v1/schedules", 200, params={"paused": "true"})
    assert [item["id"] for item in listed["items"]] == [second["id"]]
    page = await call(c, "GET", "/v1/schedules", 200, params={"limit": 1})
    rest = await call(c, "GET", "/v1/schedules", 200, params={"cursor": page["next_cursor"]})
    assert [page["items"][0]["id"], rest["items"][0]["id"]] == [first["id"], second["id"]]
    await call(c, "POST", f"/v1/schedules/{second['id']}/resume", 200)
    await call(c, "POST", f"/v1/schedules/{second['id']}/resume", 409)

    patched = await call(
        c, "PATCH", f"/v1/schedules/{first['id']}", 200, json={"cron_expression": "*/15 * * * *"}
    )
    assert patched["description"] == "Every 15 minutes"

    run = await call(c, "POST", f"/v1/schedules/{first['id']}/trigger", 202, json={"reason": "r"})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    backfill = await call(
        c, "POST", f"/v1/schedules/{first['id']}/backfill", 202,
        json={"start": iso(start), "end": iso(start + timedelta(hours=1))},
    )  # fmt: skip
    assert (backfill["occurrences"], backfill["created"]) == (5, 5)
    runs = await call(c, "GET", f"/v1/schedules/{first['id']}/runs", 200, params={"limit": 4})
    assert runs["items"][0]["id"] == run["id"]
    more = await call(
        c, "GET", f"/v1/schedules/{first['id']}/runs", 200, params={"cursor": runs["next_cursor"]}
    )
    assert [utc(r["scheduled_for"]) for r in more["items"]] == [
        start + timedelta(minutes=15),
        start,
    ]
    assert len(runs["items"]) + len(more["items"]) == 6
    backfilled = await call(c, "GET", "/v1/runs", 200, params={"kind": "backfill"})
    assert len(backfilled["items"]) == 5
    assert (await call(c, "GET", f"/v1/runs/{run['id']}", 200))["note"] == "r"

    status = await call(c, "GET", "/v1/status", 200)
    assert status["runs_by_status"] == {"pending": 6}
    assert status["schedules"] == {"total": 2, "enabled": 2, "paused": 0}
    assert status["oldest_pending"] is not None

    nodes = [{"data": {"type": "trigger", "config": {"triggerType": "Schedule",
                                                     "scheduleCron": "0 6 * * *"}}}]  # fmt: skip
    synced = await call(c, "PUT", "/v1/workflows/wf_b/schedule", 200, json={"nodes": nodes})
    assert synced["action"] == "updated"
    assert synced["schedule"]["cron_expression"] == "0 6 * * *"
    assert synced["schedule"]["interval_seconds"] is None

    await call(c, "DELETE", f"/v1/schedules/{first['id']}", 204)
    await call(c, "GET", f"/v1/runs/{run['id']}", 404)
    await call(c, "DELETE", "/v1/workflows/wf_b", 204)
    assert (await call(c, "GET", "/v1/schedules", 200))["items"] == []
