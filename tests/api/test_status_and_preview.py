"""``/v1/status``, ``/v1/preview``, health, and authentication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.api import create_app
from keeperhub_scheduler.transport.base import OutgoingMessage
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.management.world import TOKEN, add_runs, add_workflow, api_client, settings_for, utc


async def test_status_counts_runs_lag_failures_and_schedules(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ids = []
    for _ in range(2):
        body = {"workflow_id": await add_workflow(engine), "cron_expression": "* * * * *"}
        ids.append((await client.post("/v1/schedules", json=body)).json())
    await client.post(f"/v1/schedules/{ids[1]['id']}/pause")
    now = datetime.now(UTC)
    schedule, workflow = ids[0]["id"], ids[0]["workflow_id"]
    # Dispatch lag: enqueued 1 s after the occurrence (add_runs' default), for runs this minute.
    await add_runs(engine, schedule, workflow, [now - timedelta(seconds=30 + i) for i in range(4)])
    await add_runs(
        engine, schedule, workflow, [now - timedelta(minutes=10)], status="failed",
        finished_at=now - timedelta(minutes=9),
    )  # fmt: skip
    await add_runs(
        engine, schedule, workflow, [now - timedelta(hours=3)], status="dead",
        finished_at=now - timedelta(hours=2),
    )  # fmt: skip
    [pending] = await add_runs(
        engine, schedule, workflow, [now - timedelta(minutes=2)], status="pending",
        enqueued_at=None, finished_at=None,
    )  # fmt: skip

    answer = await client.get("/v1/status")
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["runs_by_status"] == {"succeeded": 4, "failed": 1, "dead": 1, "pending": 1}
    assert status["oldest_pending"]["run_id"] == pending
    assert status["oldest_pending"]["age_seconds"] >= 100
    assert status["dispatch_lag"]["samples"] == 4
    assert status["dispatch_lag"]["p50_seconds"] == 1.0
    assert status["dispatch_lag"]["p99_seconds"] == 1.0
    assert status["failures_last_hour"] == 1  # the dead run finished two hours ago
    assert status["schedules"] == {"total": 2, "enabled": 2, "paused": 1}
    assert status["queue"] is None
    assert abs(utc(status["database_time"]) - datetime.now(UTC)) < timedelta(minutes=1)


async def test_status_reports_the_queue_depth_when_sqs_is_configured(
    engine: AsyncEngine, database_url: str, queue: QueueEndpoint
) -> None:
    settings = {
        "sqs_queue_url": queue.queue_url,
        "scheduler_dlq_url": queue.dlq_url,
        "aws_endpoint_url": queue.endpoint_url,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    transport = await SqsTransport(queue).start()
    try:
        sent = await transport.send([OutgoingMessage(f"m{i}", "{}", {}) for i in range(3)])
    finally:
        await transport.close()
    assert len(sent) == 3
    async with api_client(engine, database_url, **settings) as client:
        queue_depth = (await client.get("/v1/status")).json()["queue"]
    assert queue_depth == {
        "visible": 3,
        "in_flight": 0,
        "dlq_visible": 0,
        "dlq_in_flight": 0,
        "error": None,
    }


async def test_status_answers_when_the_queue_does_not(
    engine: AsyncEngine, database_url: str
) -> None:
    settings = {
        "sqs_queue_url": "http://127.0.0.1:9/000000000000/nowhere",
        "aws_endpoint_url": "http://127.0.0.1:9",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    async with api_client(engine, database_url, **settings) as client:
        answer = await client.get("/v1/status")
    assert answer.status_code == 200
    assert answer.json()["queue"]["visible"] is None
    assert answer.json()["queue"]["error"]


async def test_preview_marks_dst_changes(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/v1/preview",
        json={
            "cron_expression": "30 2 * * *",
            "timezone": "Europe/Berlin",
            "count": 3,
            "after": "2026-03-27T12:00:00Z",
        },
    )
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["description"] == "At 02:30"
    fires = preview["fire_times"]
    assert [fire["local"] for fire in fires] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist that night
        "2026-03-30T02:30:00+02:00",
    ]
    assert [fire["offset_changed"] for fire in fires] == [False, True, False]
    assert fires[0]["dst_note"] is None
    assert fires[1]["dst_note"] == (
        "02:30 does not exist (clocks jump forward); fired when the gap ended"
    )
    assert fires[1]["utc"] == "2026-03-29T01:00:00Z"


async def test_preview_of_an_interval_and_its_errors(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/v1/preview",
        json={"interval_seconds": 3300, "count": 2, "after": "2026-01-01T00:00:00Z"},
    )
    assert answer.json()["description"] == "Every 55 minutes"
    assert [f["utc"] for f in answer.json()["fire_times"]] == [
        "2026-01-01T00:05:00Z",  # 55-minute steps from the epoch
        "2026-01-01T01:00:00Z",
    ]
    bad = await client.post("/v1/preview", json={"cron_expression": "* * 32 * *"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "cron_expression"
    assert "32" in bad.json()["detail"][0]["message"]
    count = await client.post("/v1/preview", json={"cron_expression": "@daily", "count": 101})
    assert count.json()["detail"] == [
        {"field": "count", "message": "Input should be less than or equal to 100"}
    ]


async def test_every_v1_route_needs_a_valid_bearer_token(
    engine: AsyncEngine, database_url: str
) -> None:
    app = create_app(
        settings_for(database_url, scheduler_api_tokens=f"old-token-0123456789,{TOKEN}"), engine
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as anonymous:
        schema = (await anonymous.get("/openapi.json")).json()
        assert (await anonymous.get("/docs")).status_code == 200
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        assert (await anonymous.get("/readyz")).json() == {"status": "ok"}
        routes = [
            (method.upper(), path.replace("{schedule_id}", "s").replace("{run_id}", "r")
             .replace("{workflow_id}", "w"))
            for path, methods in schema["paths"].items() if path.startswith("/v1/")
            for method in methods
        ]  # fmt: skip
        assert len(routes) == 19
        for method, path in routes:
            missing = await anonymous.request(method, path)
            assert missing.status_code == 401, (method, path)
            assert missing.headers["WWW-Authenticate"] == 'Bearer realm="keeperhub-scheduler"'
            assert missing.json() == {
                "detail": "missing bearer token (Authorization: Bearer <token>)"
            }
            wrong = await anonymous.request(
                method, path, headers={"Authorization": "Bearer not-the-token"}
            )
            assert wrong.status_code == 401
            assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
            assert wrong.json() == {"detail": "invalid bearer token"}
        basic = await anonymous.get("/v1/status", headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401
        for token in ("old-token-0123456789", TOKEN):  # both tokens of a rotation work
            answer = await anonymous.get("/v1/status", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200


async def test_without_configured_tokens_nothing_is_accepted(
    engine: AsyncEngine, database_url: str
) -> None:
    app = create_app(settings_for(database_url, scheduler_api_tokens=None), engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for header in ("Bearer ", "Bearer x", "Bearer  "):
            answer = await client.get("/v1/status", headers={"Authorization": header})
            assert answer.status_code == 401
