"""``/v1/runs`` and ``/v1/schedules/{id}/runs``: the history, filtered and paged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.management.world import add_runs, add_workflow, iso, utc

BASE = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


async def two_schedules(client: httpx.AsyncClient, engine: AsyncEngine) -> list[dict[str, Any]]:
    made = []
    for _ in range(2):
        body = {"workflow_id": await add_workflow(engine), "cron_expression": "* * * * *"}
        made.append((await client.post("/v1/schedules", json=body)).json())
    return made


async def test_runs_newest_first_filtered_by_schedule_status_kind_and_time(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    first, second = await two_schedules(client, engine)
    minutes = [BASE + timedelta(minutes=i) for i in range(6)]
    ok = await add_runs(engine, first["id"], first["workflow_id"], minutes[:3])
    failed = await add_runs(
        engine,
        first["id"],
        first["workflow_id"],
        minutes[3:5],
        status="failed",
        http_status=404,
        error="workflow not found",
        attempts=1,
    )
    other = await add_runs(engine, second["id"], second["workflow_id"], [minutes[5]], kind="manual")

    async def ids(path: str, **params: Any) -> list[str]:
        answer = await client.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return [run["id"] for run in answer.json()["items"]]

    assert await ids("/v1/runs") == [*other, *reversed(failed), *reversed(ok)]
    assert await ids(f"/v1/schedules/{first['id']}/runs") == [*reversed(failed), *reversed(ok)]
    assert await ids("/v1/runs", status="failed") == list(reversed(failed))
    assert await ids("/v1/runs", status=["failed", "succeeded"], kind="schedule") == [
        *reversed(failed),
        *reversed(ok),
    ]
    assert await ids("/v1/runs", kind="manual") == other
    assert await ids("/v1/runs", workflow_id=second["workflow_id"]) == other
    window = {"since": iso(minutes[1]), "until": iso(minutes[3])}
    assert await ids(f"/v1/schedules/{first['id']}/runs", **window) == [ok[2], ok[1]]

    one = await client.get(f"/v1/runs/{failed[0]}")
    assert one.status_code == 200
    run = one.json()
    assert (run["status"], run["http_status"], run["error"], run["attempts"]) == (
        "failed",
        404,
        "workflow not found",
        1,
    )
    assert utc(run["scheduled_for"]) == minutes[3]
    assert utc(run["finished_at"]) == minutes[3] + timedelta(seconds=2)


async def test_runs_page_with_a_cursor(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    [schedule, _] = await two_schedules(client, engine)
    made = await add_runs(
        engine,
        schedule["id"],
        schedule["workflow_id"],
        [BASE + timedelta(minutes=i) for i in range(7)],
    )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"/v1/schedules/{schedule['id']}/runs", params=params)).json()
        seen += [run["id"] for run in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))


async def test_a_skip_range_shows_how_many_occurrences_it_stands_for(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    [schedule, _] = await two_schedules(client, engine)
    [skip] = await add_runs(
        engine,
        schedule["id"],
        schedule["workflow_id"],
        [BASE],
        status="skipped",
        skip_reason="paused",
        scheduled_until=BASE + timedelta(minutes=59),
        occurrences=60,
        enqueued_at=None,
    )
    run = (await client.get(f"/v1/runs/{skip}")).json()
    assert (run["skip_reason"], run["occurrences"]) == ("paused", 60)
    assert utc(run["scheduled_until"]) == BASE + timedelta(minutes=59)


async def test_run_errors(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/runs/0190a1b2-0000-7000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "run '0190a1b2-0000-7000-8000-000000000000' not found"}
    unknown_schedule = await client.get("/v1/schedules/nope/runs")
    assert unknown_schedule.json() == {"detail": "schedule 'nope' not found"}
    bad_status = await client.get("/v1/runs", params={"status": "exploded"})
    assert bad_status.status_code == 422
    assert bad_status.json()["detail"][0]["field"] == "status.0"
    typo = await client.get("/v1/runs", params={"stauts": "failed"})
    assert typo.json()["detail"] == [
        {"field": "stauts", "message": "Extra inputs are not permitted"}
    ]
    epoch = await client.get("/v1/runs", params={"until": "1700000000"})
    assert epoch.json()["detail"][0]["field"] == "until"
    naive = await client.get("/v1/runs", params={"since": "2026-01-01T00:00:00"})
    assert naive.json()["detail"] == [
        {"field": "since", "message": "Input should have timezone info"}
    ]
