"""The operator's commands: ``schedules ...``, ``workflows ...``, ``status``, ``api``, ``prune``.

Each command talks to the database (``DATABASE_URL``) or, with ``--api-url`` (or
``SCHEDULER_API_URL``) and a token (``--token`` or ``SCHEDULER_API_TOKEN``), to the REST API: the
same commands and the same output either way. Tables and colour on a terminal, ``--json`` for
scripts; errors are one line on stderr, ``error: ...``.

Exit codes:
  0  done
  1  failed (the database or the API could not be reached, or answered an error)
  2  bad input or configuration (the line names the field and the reason)
  3  not found (no such schedule, run or workflow)
  4  conflict (the workflow already has a schedule; resuming a schedule that is not paused)

``register(app)`` adds them to the ``keeperhub-scheduler`` Typer app.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

import typer

from keeperhub_scheduler.cli import render
from keeperhub_scheduler.cli.backend import BAD_INPUT
from keeperhub_scheduler.cli.common import (
    ApiUrl,
    JsonFlag,
    Target,
    Token,
    fail,
    run,
    run_on_database,
    show,
)
from keeperhub_scheduler.cli.schedules import schedules_app
from keeperhub_scheduler.cli.workflows import workflows_app
from keeperhub_scheduler.config import MAKE_A_TOKEN, ConfigError, Settings, load_settings


def register(app: typer.Typer) -> None:
    app.add_typer(schedules_app, name="schedules")
    app.add_typer(workflows_app, name="workflows")
    app.command("status")(status_command)
    app.command("api")(api_command)
    app.command("prune")(prune_command)


def status_command(as_json: JsonFlag = False, api_url: ApiUrl = None, token: Token = None) -> None:
    """The scheduler at a glance: runs, lag, failures, schedules, queue depth.

    Runs by status, the oldest pending run, dispatch lag (p50/p99 over the last 5 minutes),
    failures in the last hour, schedules enabled and paused, and the SQS queue's depth.
    """
    status = run(Target(api_url, token), lambda backend: backend.status())
    show(as_json, status, render.status_report)


def api_command(
    host: Annotated[str | None, typer.Option(help="Default: SCHEDULER_API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: SCHEDULER_API_PORT.")] = None,
    root_path: Annotated[
        str,
        typer.Option(
            "--root-path",
            envvar="SCHEDULER_API_ROOT_PATH",
            help="The path prefix a reverse proxy serves the API under and strips, e.g. /scheduler"
            " (links and cookies of the status page carry it).",
        ),
    ] = "",
) -> None:
    """Serve the management REST API and its status page at /ui (tokens: SCHEDULER_API_TOKENS)."""
    from keeperhub_scheduler.cli.startup import settings_and_logging  # logs, secrets scrubbed
    from keeperhub_scheduler.processes import run_api

    settings = _settings()
    root_path = root_path.rstrip("/")
    if root_path and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", root_path):
        fail(BAD_INPUT, f"--root-path {root_path!r}: give a path such as /scheduler")
    if not settings.api_tokens:
        fail(
            BAD_INPUT,
            "SCHEDULER_API_TOKENS is not set: the API will not start without a token;"
            f" make one with: {MAKE_A_TOKEN}, then set SCHEDULER_API_TOKENS=<that value>",
        )
    settings_and_logging()
    bind_port = settings.scheduler_api_port if port is None else port
    asyncio.run(run_api(settings, host or settings.scheduler_api_host, bind_port, root_path))


def prune_command(as_json: JsonFlag = False) -> None:
    """Delete old finished runs (retention), in small batches.

    Finished runs older than SCHEDULER_RETENTION_DAYS, and beyond the newest
    SCHEDULER_RETENTION_MAX_RUNS of each schedule; unfinished runs are never deleted.
    """
    from keeperhub_scheduler.management import prune_runs

    settings = _settings()
    pruned = run_on_database(settings, lambda engine: prune_runs(engine, settings))
    result = {
        "pruned": pruned,
        "retention_days": settings.scheduler_retention_days,
        "max_runs_per_schedule": settings.scheduler_retention_max_runs,
    }
    show(as_json, result, lambda data: render.console().print(
        f"Pruned {data['pruned']} runs (finished more than {data['retention_days']} days ago,"
        f" or beyond the newest {data['max_runs_per_schedule']} of a schedule)."
    ))  # fmt: skip


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        fail(BAD_INPUT, str(error))
