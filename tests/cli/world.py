"""Running ``keeperhub-scheduler`` commands through Typer's runner, against the database or
against the API served by uvicorn in this event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from keeperhub_scheduler.api import create_app
from keeperhub_scheduler.cli import app
from keeperhub_scheduler.processes import EmbeddedServer
from tests.management.world import TOKEN, settings_for
from tests.support.standin import free_port

# Variables of the surroundings that would change where the commands go.
CLEAN = {
    "SCHEDULER_API_URL": None,
    "SCHEDULER_API_TOKEN": None,
    "SCHEDULER_API_TOKENS": None,
    "SQS_QUEUE_URL": None,
}


def database_env(database_url: str, **extra: str) -> dict[str, str | None]:
    return CLEAN | {"DATABASE_URL": database_url} | extra


def api_env(api_url: str, token: str = TOKEN) -> dict[str, str | None]:
    # DATABASE_URL points nowhere: in API mode the CLI must not touch a database.
    return CLEAN | {
        "SCHEDULER_API_URL": api_url,
        "SCHEDULER_API_TOKEN": token,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
    }


async def invoke(env: dict[str, str | None], *args: str, input: str | None = None) -> Result:
    """One command, in a thread (it runs its own event loop, and the API may be served by ours)."""
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, app, list(args), input=input, env=env, catch_exceptions=False
    )


async def invoke_json(env: dict[str, str | None], *args: str) -> Any:
    result = await invoke(env, *args, "--json")
    assert result.exit_code == 0, result.stderr or result.stdout
    return json.loads(result.stdout)


def failed(result: Result, code: int) -> str:
    """The one error line of a command that failed with ``code``."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


@asynccontextmanager
async def running_api(engine: AsyncEngine, database_url: str) -> AsyncIterator[str]:
    """The API on ``engine``, served by uvicorn in this event loop; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings_for(database_url), engine),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
