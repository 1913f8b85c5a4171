"""``keeperhub-scheduler dev``: dispatcher, executor and API in one process, on SQLite.

The same code paths as production except the transport (runs are received straight from the
database, no SQS) and the SQL dialect. With ``--demo`` it also serves a KeeperHub stand-in that
prints each execution, and creates a sample workflow that fires every 5 seconds, so a new user
sees schedules fire within seconds of the first command. Ctrl-C stops it cleanly; a restart
continues where it left off, with each schedule's misfire policy applied to what was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.db.engine import create_engine
from keeperhub_scheduler.db.migrate import upgrade
from keeperhub_scheduler.db.tables import workflow_schedules, workflows
from keeperhub_scheduler.db.urls import redacted
from keeperhub_scheduler.dev.standin import StandInState, standin_app
from keeperhub_scheduler.dev.view import RunsView
from keeperhub_scheduler.dispatcher import Dispatcher
from keeperhub_scheduler.management.service import ScheduleService
from keeperhub_scheduler.processes import build_executor, serve, stop_on_signals
from keeperhub_scheduler.telemetry.beats import BeatWriter
from keeperhub_scheduler.transport.database import DatabaseTransport
from keeperhub_scheduler.ui.session import LoginCodes

DEMO_WORKFLOW_ID = "demo-workflow"
DEMO_CRON = "*/5 * * * * *"  # six fields: every 5 seconds


@dataclass(frozen=True)
class DevOptions:
    demo: bool = False
    standin_port: int = 3000


async def run_dev(settings: Settings, options: DevOptions, console: Console) -> int:
    url = settings.database
    upgrade(url)
    host = settings.scheduler_api_host
    api_port = available_port(host, settings.scheduler_api_port)
    token = settings.api_tokens[0] if settings.api_tokens else secrets.token_urlsafe(24)
    standin_port = available_port("127.0.0.1", options.standin_port) if options.demo else 0
    # Runs come from the database here, polled every 100 ms: a short receive wait lets Ctrl-C
    # stop the executor at once instead of after a 20 s long poll.
    overrides: dict[str, object] = {"scheduler_receive_wait_seconds": 1}
    if options.demo:
        overrides["keeperhub_url"] = f"http://127.0.0.1:{standin_port}"
    settings = settings.model_copy(update=overrides)
    engine = create_engine(url, pool_size=5)
    stop = stop_on_signals()
    view = RunsView(engine, console, live=options.demo and console.is_terminal)
    try:
        if options.demo:
            await create_demo_schedule(engine)
        codes = LoginCodes()
        api_url = f"http://{host}:{api_port}"
        view.banner(
            database=redacted(url),
            api_url=api_url,
            token=token if not settings.api_tokens else "(from SCHEDULER_API_TOKENS)",
            keeperhub_url=settings.keeperhub_base_url,
        )
        # Only on this terminal, never in a log: single use, and valid for a few minutes.
        view.login_link(f"{api_url}/ui/login/once?code={codes.issue(token)}", codes.lifetime)
        servers = [_serve_api(settings, engine, token, host, api_port, stop, codes)]
        if options.demo:
            servers.append(_serve_standin(settings, standin_port, view.on_execution, stop))
        await asyncio.gather(_run_pipeline(settings, engine, stop), view.run(stop), *servers)
    finally:
        await engine.dispose()
    console.print("stopped cleanly; run the same command to continue where it left off")
    return 0


async def _run_pipeline(settings: Settings, engine: AsyncEngine, stop: asyncio.Event) -> None:
    transport = DatabaseTransport(engine, settings.signing_key_bytes)
    dispatcher = Dispatcher(engine, transport, settings)
    executor, keeperhub = build_executor(settings, engine, transport)
    try:
        await asyncio.gather(
            dispatcher.run_forever(stop),
            executor.run(stop),
            BeatWriter(engine, "dispatcher", dispatcher.heartbeat).run(stop),
            BeatWriter(engine, "executor", executor.heartbeat).run(stop),
        )
    finally:
        await keeperhub.close()


async def _serve_api(
    settings: Settings,
    engine: AsyncEngine,
    token: str,
    host: str,
    port: int,
    stop: asyncio.Event,
    codes: LoginCodes,
) -> None:
    from keeperhub_scheduler.api import create_app

    app_settings = settings.model_copy(update={"scheduler_api_tokens": SecretStr(token)})
    app = create_app(app_settings, engine, codes)
    await serve(app, host, port, stop, setting="SCHEDULER_API_PORT")


async def _serve_standin(
    settings: Settings,
    port: int,
    on_call: Callable[[dict[str, Any]], None],
    stop: asyncio.Event,
) -> None:
    key = settings.scheduler_service_api_key
    state = StandInState(service_key=key.get_secret_value() if key else None, on_call=on_call)
    await serve(standin_app(state), "127.0.0.1", port, stop, setting="--standin-port")


async def create_demo_schedule(engine: AsyncEngine) -> None:
    """The sample workflow and its every-5-seconds schedule; left as they are if present."""
    async with engine.begin() as connection:
        found = await connection.execute(
            select(workflows.c.id).where(workflows.c.id == DEMO_WORKFLOW_ID)
        )
        if found.first() is None:
            await connection.execute(
                insert(workflows).values(
                    id=DEMO_WORKFLOW_ID,
                    name="Demo: say hello every 5 seconds",
                    enabled=True,
                    nodes=_demo_nodes(),
                )
            )
        has_schedule = await connection.execute(
            select(workflow_schedules.c.id).where(
                workflow_schedules.c.workflow_id == DEMO_WORKFLOW_ID
            )
        )
        if has_schedule.first() is not None:
            return
    await ScheduleService(engine).sync_workflow_schedule(DEMO_WORKFLOW_ID, _demo_nodes())


def _demo_nodes() -> list[dict[str, Any]]:
    trigger = {"triggerType": "Schedule", "scheduleCron": DEMO_CRON, "scheduleTimezone": "UTC"}
    return [{"id": "trigger", "data": {"type": "trigger", "config": trigger}}]


def available_port(host: str, preferred: int) -> int:
    """``preferred`` when it is free, else any free port (a new user may have 8000 taken)."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):
                probe.bind((host, port))
                return int(probe.getsockname()[1])
    raise OSError(f"no free port on {host}")
