"""The same commands against the REST API (``--api-url``/``SCHEDULER_API_URL``), served by
uvicorn in this event loop: the same answers, the same errors and exit codes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cli.world import api_env, database_env, failed, invoke, invoke_json, running_api
from tests.management.world import TOKEN, add_workflow
from tests.support import processes
from tests.support.standin import free_port


@pytest.fixture
async def api_url(engine: AsyncEngine, database_url: str) -> AsyncIterator[str]:
    async with running_api(engine, database_url) as url:
        yield url


async def test_a_session_against_the_api(
    api_url: str, engine: AsyncEngine, database_url: str
) -> None:
    env = api_env(api_url)
    workflow_id = await add_workflow(engine)
    created = await invoke_json(
        env, "schedules", "create", workflow_id, "--cron", "0 9 * * 1-5", "-z", "Europe/Berlin"
    )
    assert created["description"] == "At 09:00, Monday through Friday"
    # The same answer from the API and from the database.
    over_api = await invoke_json(env, "schedules", "show", created["id"])
    direct = await invoke_json(database_env(database_url), "schedules", "show", created["id"])
    assert over_api == direct == created

    listed = await invoke_json(env, "schedules", "list", "--enabled")
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    paused = await invoke_json(env, "schedules", "pause", created["id"], "--note", "holiday")
    assert paused["paused_note"] == "holiday"
    updated = await invoke_json(env, "schedules", "update", created["id"], "--timezone", "UTC")
    assert updated["timezone"] == "UTC"
    assert updated["paused"] is True
    run = await invoke_json(env, "schedules", "trigger", created["id"], "--reason", "by hand")
    assert (run["kind"], run["note"]) == ("manual", "by hand")
    backfill = await invoke_json(
        env, "schedules", "backfill", created["id"],
        "--start", "2026-01-05T00:00:00Z", "--end", "2026-01-09T23:00:00Z",
    )  # fmt: skip
    assert backfill["created"] == 5
    runs = await invoke_json(env, "schedules", "runs", created["id"], "--kind", "backfill")
    assert len(runs["items"]) == 5
    assert (await invoke_json(env, "schedules", "runs", "--id", run["id"]))["note"] == "by hand"
    resumed = await invoke(env, "schedules", "resume", created["id"])
    assert resumed.exit_code == 0
    status = await invoke_json(env, "status")
    assert status["runs_by_status"] == {"pending": 6}
    preview = await invoke_json(env, "schedules", "preview", "@hourly", "-n", "2")
    assert preview["description"] == "Every hour"
    table = await invoke(env, "schedules", "show", created["id"])
    assert "At 09:00, Monday through Friday" in table.stdout
    deleted = await invoke(env, "schedules", "delete", created["id"], "--yes")
    assert deleted.exit_code == 0


async def test_api_errors_map_to_the_same_exit_codes(api_url: str, engine: AsyncEngine) -> None:
    env = api_env(api_url)
    workflow_id = await add_workflow(engine)
    await invoke_json(env, "schedules", "create", workflow_id, "--every", "10m")
    duplicate = await invoke(env, "schedules", "create", workflow_id, "--every", "5m")
    assert "already has a schedule" in failed(duplicate, 4)
    missing = await invoke(env, "schedules", "show", "nope")
    assert failed(missing, 3) == "schedule 'nope' not found"
    other = await add_workflow(engine)
    invalid = await invoke(env, "schedules", "create", other, "--cron", "60 * * * *")
    assert failed(invalid, 2) == "cron_expression: minute 60 is out of range 0-59"
    wrong_token = await invoke(api_env(api_url, token="wrong"), "status")
    assert failed(wrong_token, 2).startswith("the API refused the token (invalid bearer token)")
    no_token = await invoke(api_env(api_url) | {"SCHEDULER_API_TOKEN": None}, "status")
    assert failed(no_token, 2) == "--api-url needs a token: --token or SCHEDULER_API_TOKEN"
    flags = await invoke(
        database_env("postgresql://nobody@127.0.0.1:9/none"),
        "status", "--api-url", api_url, "--token", "test-token-0123456789", "--json",
    )  # fmt: skip
    assert flags.exit_code == 0
    down = await invoke(api_env("http://127.0.0.1:9"), "status")
    assert failed(down, 1).startswith("cannot reach the API at http://127.0.0.1:9")


async def test_the_api_command_serves_with_bearer_auth(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = processes.environment(
        database_url,
        SCHEDULER_API_TOKENS=f"rotated-out-0123456789,{TOKEN}",
        SCHEDULER_API_HOST="127.0.0.1",
        SCHEDULER_API_PORT=str(port),
    )
    process = processes.spawn(["api"], env, tmp_path / "api.log")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(300):
                try:
                    health = await client.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert health.json() == {"status": "ok"}
            assert (await client.get("/v1/status")).status_code == 401
            authorized = await client.get(
                "/v1/status", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert authorized.status_code == 200
            assert authorized.json()["schedules"]["total"] == 0
    finally:
        # SIGTERM (Kubernetes' stop): a clean shutdown and exit status 0.
        assert processes.kill(process, signal.SIGTERM) == 0
    log = (tmp_path / "api.log").read_text()
    assert "Finished server process" in log
    assert TOKEN not in log
