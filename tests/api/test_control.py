"""Pause, resume, trigger and backfill through ``/v1/schedules/{id}/...``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.management.world import add_runs, add_workflow, iso, run_columns, utc


async def new_schedule(
    client: httpx.AsyncClient, engine: AsyncEngine, **body: Any
) -> dict[str, Any]:
    values = {"workflow_id": await add_workflow(engine), "cron_expression": "0 * * * *"} | body
    answer = await client.post("/v1/schedules", json=values)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def test_pause_with_a_note_and_until_then_resume(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    schedule = await new_schedule(client, engine)
    until = datetime.now(UTC) + timedelta(hours=2)
    paused = await client.post(
        f"/v1/schedules/{schedule['id']}/pause",
        json={"note": "KeeperHub maintenance", "until": iso(until)},
    )
    assert paused.status_code == 200, paused.text
    body = paused.json()
    assert body["paused"] is True
    assert body["paused_note"] == "KeeperHub maintenance"
    assert utc(body["paused_until"]) == until
    began = body["paused_at"]

    # Pausing again changes the note and the end, not when the pause began.
    again = await client.post(f"/v1/schedules/{schedule['id']}/pause", json={"note": "longer"})
    assert again.json()["paused_at"] == began
    assert again.json()["paused_until"] is None
    assert again.json()["paused_note"] == "longer"

    resumed = await client.post(f"/v1/schedules/{schedule['id']}/resume")
    assert resumed.status_code == 200
    body = resumed.json()
    assert body["paused"] is False
    assert (body["paused_at"], body["paused_until"], body["paused_note"]) == (None, None, None)
    twice = await client.post(f"/v1/schedules/{schedule['id']}/resume")
    assert twice.status_code == 409
    assert twice.json() == {"detail": f"schedule {schedule['id']!r} is not paused"}


async def test_pause_without_a_body_and_until_in_the_past(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    schedule = await new_schedule(client, engine)
    past = await client.post(
        f"/v1/schedules/{schedule['id']}/pause", json={"until": "2020-01-01T00:00:00Z"}
    )
    assert past.status_code == 422
    assert past.json()["detail"] == [{"field": "until", "message": "until must be in the future"}]
    bare = await client.post(f"/v1/schedules/{schedule['id']}/pause")
    assert bare.status_code == 200
    assert bare.json()["paused"] is True
    assert (await client.post("/v1/schedules/nope/pause")).status_code == 404
    assert (await client.post("/v1/schedules/nope/resume")).status_code == 404


async def test_trigger_writes_one_pending_manual_run_now(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    schedule = await new_schedule(client, engine)
    answer = await client.post(
        f"/v1/schedules/{schedule['id']}/trigger",
        json={"reason": "customer asked for a rerun", "ignore_overlap": True},
    )
    assert answer.status_code == 202, answer.text
    run = answer.json()
    assert (run["kind"], run["status"]) == ("manual", "pending")
    assert run["note"] == "customer asked for a rerun"
    assert run["ignore_overlap"] is True
    assert run["scheduled_for"] == run["due_at"]
    assert abs(utc(run["scheduled_for"]) - datetime.now(UTC)) < timedelta(minutes=1)
    # Two triggers are two runs, each its own occurrence.
    second = await client.post(f"/v1/schedules/{schedule['id']}/trigger")
    assert second.status_code == 202
    assert second.json()["note"] is None
    rows = await run_columns(engine, schedule["id"])
    assert [row["kind"] for row in rows] == ["manual", "manual"]
    assert (await client.post("/v1/schedules/nope/trigger")).status_code == 404


async def test_backfill_creates_a_run_per_occurrence_and_none_twice(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    schedule = await new_schedule(client, engine, cron_expression="0 * * * *")
    start = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    # One occurrence already has a run (it fired at the time).
    await add_runs(engine, schedule["id"], schedule["workflow_id"], [start + timedelta(hours=2)])
    body = {"start": iso(start), "end": iso(start + timedelta(hours=5)), "reason": "outage"}
    answer = await client.post(f"/v1/schedules/{schedule['id']}/backfill", json=body)
    assert answer.status_code == 202, answer.text
    assert answer.json() | {"start": None, "end": None} == {
        "schedule_id": schedule["id"],
        "start": None,
        "end": None,
        "occurrences": 6,
        "created": 5,
        "existing": 1,
    }
    rows = await run_columns(engine, schedule["id"])
    assert [(utc(iso(r["scheduled_for"])).hour, r["kind"]) for r in rows] == [
        (0, "backfill"),
        (1, "backfill"),
        (2, "schedule"),
        (3, "backfill"),
        (4, "backfill"),
        (5, "backfill"),
    ]
    assert {r["status"] for r in rows if r["kind"] == "backfill"} == {"pending"}
    assert {r["note"] for r in rows if r["kind"] == "backfill"} == {"outage"}
    again = await client.post(f"/v1/schedules/{schedule['id']}/backfill", json=body)
    assert (again.json()["created"], again.json()["existing"]) == (0, 6)


async def test_backfill_is_bounded_and_checks_its_range(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    schedule = await new_schedule(client, engine, cron_expression="* * * * *")
    url = f"/v1/schedules/{schedule['id']}/backfill"
    start = datetime(2026, 1, 5, tzinfo=UTC)
    too_many = await client.post(
        url, json={"start": iso(start), "end": iso(start + timedelta(minutes=1000))}
    )
    assert too_many.status_code == 422
    assert too_many.json()["detail"] == [
        {
            "field": "end",
            "message": "more than 1000 occurrences between start and end;"
            " backfill a shorter range at a time",
        }
    ]
    exactly = await client.post(
        url, json={"start": iso(start), "end": iso(start + timedelta(minutes=999))}
    )
    assert exactly.json()["created"] == 1000
    backwards = await client.post(
        url, json={"start": iso(start), "end": iso(start - timedelta(minutes=1))}
    )
    assert backwards.json()["detail"] == [{"field": "end", "message": "end is before start"}]
    future = await client.post(
        url,
        json={"start": iso(start), "end": iso(datetime.now(UTC) + timedelta(days=1))},
    )
    assert future.json()["detail"][0]["field"] == "end"
    assert "future" in future.json()["detail"][0]["message"]
    missing = await client.post(url, json={"start": iso(start)})
    assert missing.json()["detail"] == [{"field": "end", "message": "Field required"}]
    unknown = await client.post(
        "/v1/schedules/nope/backfill", json={"start": iso(start), "end": iso(start)}
    )
    assert unknown.status_code == 404
