"""``/v1/schedules``: create, read, list, update and delete, with their errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.management.world import (
    add_runs,
    add_workflow,
    iso,
    schedule_columns,
    utc,
)


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await client.post("/v1/schedules", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def problems(answer: httpx.Response) -> list[tuple[str, str]]:
    assert answer.status_code == 422, answer.text
    return [(entry["field"], entry["message"]) for entry in answer.json()["detail"]]


async def test_create_answers_the_schedule_described_with_its_next_five_fire_times(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    workflow_id = await add_workflow(engine)
    schedule = await create(
        client,
        workflow_id=workflow_id,
        cron_expression="0 9 * * 1-5",
        timezone="Europe/Berlin",
        misfire_policy="fire_all",
        overlap_policy="skip",
        jitter_seconds=30,
    )
    assert schedule["workflow_id"] == workflow_id
    assert schedule["description"] == "At 09:00, Monday through Friday"
    assert schedule["enabled"] is True
    assert schedule["paused"] is False
    assert (schedule["misfire_policy"], schedule["overlap_policy"]) == ("fire_all", "skip")
    fires = schedule["next_fire_times"]
    assert len(fires) == 5
    for fire in fires:
        local = datetime.fromisoformat(fire["local"])
        assert (local.hour, local.minute) == (9, 0)
        assert local.weekday() < 5
        assert utc(fire["utc"]) == local
        assert fire["utc_offset"] in ("+01:00", "+02:00")
    assert schedule["recent_runs"] == []
    # Planned in the same transaction: next_run_at is the first fire plus the jitter.
    row = await schedule_columns(engine, schedule["id"])
    first = utc(fires[0]["utc"])
    assert first <= row["next_run_at"] <= first + timedelta(seconds=30)
    assert row["plan_key"] is not None
    assert row["decided_through"] is not None


async def test_an_interval_schedule_reads_as_every_n(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    anchor = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    schedule = await create(
        client,
        workflow_id=await add_workflow(engine),
        interval_seconds=3300,
        anchor_at=iso(anchor),
    )
    assert schedule["cron_expression"] is None
    assert schedule["interval_seconds"] == 3300
    assert schedule["description"] == "Every 55 minutes"
    for fire in schedule["next_fire_times"]:
        assert (utc(fire["utc"]) - anchor).total_seconds() % 3300 == 0


async def test_a_disabled_schedule_has_no_next_run(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    schedule = await create(
        client, workflow_id=await add_workflow(engine), cron_expression="* * * * *", enabled=False
    )
    assert schedule["enabled"] is False
    assert schedule["next_run_at"] is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"cron_expression": "60 * * * *"},
            ("cron_expression", "minute 60 is out of range 0-59"),
        ),
        (
            {"cron_expression": "0 25 * * *"},
            ("cron_expression", "hour 25 is out of range 0-23"),
        ),
        ({"cron_expression": ""}, ("cron_expression", "cron expression is empty")),
        (
            {"cron_expression": "0 9 * * *", "timezone": "Mars/Olympus"},
            ("timezone", "unknown time zone 'Mars/Olympus'"),
        ),
        ({}, ("cron_expression", "either cron_expression or interval_seconds is required")),
        (
            {"cron_expression": "* * * * *", "interval_seconds": 60},
            ("interval_seconds", "give either cron_expression or interval_seconds, not both"),
        ),
        (
            {"cron_expression": "* * * * *", "anchor_at": "2026-01-01T00:00:00Z"},
            ("anchor_at", "anchor_at applies only to interval schedules"),
        ),
        (
            {"interval_seconds": 0},
            ("interval_seconds", "Input should be greater than or equal to 1"),
        ),
        (
            {"cron_expression": "* * * * *", "jitter_seconds": 3601},
            ("jitter_seconds", "Input should be less than or equal to 3600"),
        ),
        (
            {"cron_expression": "* * * * *", "catchup_window_seconds": 31 * 86400 + 1},
            ("catchup_window_seconds", "Input should be less than or equal to 2678400"),
        ),
        (
            {"cron_expression": "* * * * *", "misfire_policy": "sometimes"},
            ("misfire_policy", "Input should be 'fire_once', 'fire_all' or 'skip'"),
        ),
        (
            {"cron_expression": "* * * * *", "start_at": "2026-01-01T00:00:00"},
            ("start_at", "Input should have timezone info"),
        ),
        (
            {
                "cron_expression": "* * * * *",
                "start_at": "2026-02-01T00:00:00Z",
                "end_at": "2026-01-01T00:00:00Z",
            },
            ("end_at", "end_at is before start_at"),
        ),
        (
            {"cron_expression": "* * * * *", "colour": "blue"},
            ("colour", "Extra inputs are not permitted"),
        ),
        (
            {"cron_expression": "* * * * *", "timezone": "UTC\u0000"},
            ("timezone", "must not contain NUL characters"),
        ),
    ],
)
async def test_invalid_input_is_422_naming_the_field_and_the_reason(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any], expected: tuple[str, str]
) -> None:
    workflow_id = await add_workflow(engine)
    answer = await client.post("/v1/schedules", json={"workflow_id": workflow_id} | body)
    assert expected in problems(answer)


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/v1/schedules", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert problems(answer)[0][0] == "body"


async def test_create_for_an_unknown_workflow_is_404_and_a_second_schedule_is_409(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    answer = await client.post(
        "/v1/schedules", json={"workflow_id": "wf_missing", "cron_expression": "* * * * *"}
    )
    assert answer.status_code == 404
    assert answer.json() == {"detail": "workflow 'wf_missing' not found"}
    workflow_id = await add_workflow(engine)
    first = await create(client, workflow_id=workflow_id, cron_expression="* * * * *")
    again = await client.post(
        "/v1/schedules", json={"workflow_id": workflow_id, "interval_seconds": 60}
    )
    assert again.status_code == 409
    assert first["id"] in again.json()["detail"]
    assert "already has a schedule" in again.json()["detail"]


async def test_read_shows_the_last_five_runs_newest_first(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    workflow_id = await add_workflow(engine)
    schedule = await create(client, workflow_id=workflow_id, cron_expression="* * * * *")
    base = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    await add_runs(
        engine, schedule["id"], workflow_id, [base + timedelta(minutes=i) for i in range(7)]
    )
    answer = await client.get(f"/v1/schedules/{schedule['id']}")
    assert answer.status_code == 200
    recent = answer.json()["recent_runs"]
    assert [utc(run["scheduled_for"]).minute for run in recent] == [6, 5, 4, 3, 2]
    assert recent[0]["status"] == "succeeded"


async def test_unknown_and_malformed_schedule_ids(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/schedules/nosuchschedule")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "schedule 'nosuchschedule' not found"}
    for method in ("PATCH", "DELETE"):
        answer = await client.request(method, "/v1/schedules/nosuchschedule", json={})
        assert answer.status_code == 404
    malformed = await client.get("/v1/schedules/bad%20id")
    assert problems(malformed)[0][0] == "schedule_id"


async def test_list_filters_and_pages(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    made = []
    for index in range(5):
        made.append(
            await create(
                client,
                workflow_id=await add_workflow(engine),
                cron_expression="* * * * *",
                enabled=index != 0,
            )
        )
    await client.post(f"/v1/schedules/{made[1]['id']}/pause", json={"note": "maintenance"})

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/schedules", params=params)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [schedule["id"] for schedule in made]

    async def ids(**params: Any) -> list[str]:
        answer = await client.get("/v1/schedules", params=params)
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["items"]]

    assert await ids(enabled="false") == [made[0]["id"]]
    assert await ids(paused="true") == [made[1]["id"]]
    assert len(await ids(paused="false")) == 4
    assert await ids(workflow_id=made[3]["workflow_id"]) == [made[3]["id"]]
    bad = await client.get("/v1/schedules", params={"limit": 501})
    assert ("limit", "Input should be less than or equal to 500") in problems(bad)
    bad_cursor = await client.get("/v1/schedules", params={"cursor": "garbage"})
    assert problems(bad_cursor) == [("cursor", "cursor is not one this API handed out")]


async def test_a_change_of_timing_replans_at_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    schedule = await create(
        client, workflow_id=await add_workflow(engine), cron_expression="0 3 1 1 *"
    )
    before = await schedule_columns(engine, schedule["id"])
    answer = await client.patch(
        f"/v1/schedules/{schedule['id']}", json={"cron_expression": "*/5 * * * *"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["description"] == "Every 5 minutes"
    after = await schedule_columns(engine, schedule["id"])
    assert after["plan_key"] != before["plan_key"]
    assert after["decided_through"] > before["decided_through"]
    assert after["next_run_at"] == utc(answer.json()["next_fire_times"][0]["utc"])
    assert after["next_run_at"] - after["decided_through"] <= timedelta(minutes=5)

    # Cron to interval and back: the kind follows the field given.
    interval = await client.patch(f"/v1/schedules/{schedule['id']}", json={"interval_seconds": 90})
    assert interval.json()["interval_seconds"] == 90
    assert interval.json()["cron_expression"] is None
    back = await client.patch(f"/v1/schedules/{schedule['id']}", json={"cron_expression": "@daily"})
    assert back.json()["interval_seconds"] is None
    assert back.json()["cron_expression"] == "@daily"


async def test_a_change_of_policy_only_does_not_replan(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    schedule = await create(
        client, workflow_id=await add_workflow(engine), cron_expression="*/5 * * * *"
    )
    before = await schedule_columns(engine, schedule["id"])
    answer = await client.patch(
        f"/v1/schedules/{schedule['id']}",
        json={"misfire_policy": "skip", "overlap_policy": "skip", "max_catchup_runs": 3},
    )
    assert answer.status_code == 200
    after = await schedule_columns(engine, schedule["id"])
    assert (after["misfire_policy"], after["overlap_policy"], after["max_catchup_runs"]) == (
        "skip",
        "skip",
        3,
    )
    for column in ("next_run_at", "decided_through", "plan_key"):
        assert after[column] == before[column]


async def test_disable_clears_next_run_and_enable_plans_it_again(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    schedule = await create(
        client, workflow_id=await add_workflow(engine), cron_expression="*/5 * * * *"
    )
    off = await client.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": False})
    assert off.json()["enabled"] is False
    assert off.json()["next_run_at"] is None
    on = await client.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": True})
    assert on.json()["next_run_at"] is not None
    row = await schedule_columns(engine, schedule["id"])
    assert row["decided_through"] is not None


async def test_update_rejects_invalid_timing_and_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    schedule = await create(
        client, workflow_id=await add_workflow(engine), cron_expression="*/5 * * * *"
    )
    answer = await client.patch(
        f"/v1/schedules/{schedule['id']}", json={"cron_expression": "60 * * * *"}
    )
    assert problems(answer) == [("cron_expression", "minute 60 is out of range 0-59")]
    zone = await client.patch(f"/v1/schedules/{schedule['id']}", json={"timezone": "Nowhere"})
    assert problems(zone) == [("timezone", "unknown time zone 'Nowhere'")]
    row = await schedule_columns(engine, schedule["id"])
    assert (row["cron_expression"], row["timezone"]) == ("*/5 * * * *", "UTC")


async def test_delete_removes_the_schedule_and_its_runs(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    workflow_id = await add_workflow(engine)
    schedule = await create(client, workflow_id=workflow_id, cron_expression="* * * * *")
    [run_id] = await add_runs(
        engine, schedule["id"], workflow_id, [datetime(2026, 1, 1, tzinfo=UTC)]
    )
    answer = await client.delete(f"/v1/schedules/{schedule['id']}")
    assert answer.status_code == 204
    assert answer.content == b""
    assert (await client.get(f"/v1/schedules/{schedule['id']}")).status_code == 404
    assert (await client.get(f"/v1/runs/{run_id}")).status_code == 404
    assert (await client.delete(f"/v1/schedules/{schedule['id']}")).status_code == 404
