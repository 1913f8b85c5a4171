"""``keeperhub-scheduler``: the one command every process and operator uses.

Exit codes: 0 success; 1 the work failed (e.g. ``dispatcher --once`` could not relay everything,
the database does not answer); 2 bad input or configuration. A failure is one line on stderr that
says which and why, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from keeperhub_scheduler.cli import flags  # noqa: F401  (no <bool> labels in --help)
from keeperhub_scheduler.cli.common import database_problem
from keeperhub_scheduler.cli.manage import register as register_management
from keeperhub_scheduler.cli.startup import scrubbed, settings_and_logging
from keeperhub_scheduler.config import DEFAULT_SQLITE_URL, ConfigError
from keeperhub_scheduler.errors import InvalidScheduleError, SchedulerError
from keeperhub_scheduler.telemetry.logs import describe

app = typer.Typer(
    name="keeperhub-scheduler",
    help="Run KeeperHub workflows on cron and interval schedules, exactly once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
queue_app = typer.Typer(help="The SQS queue and its dead-letter queue.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")


@app.command()
def migrate() -> None:
    """Create or upgrade the schema (safe to run again, and to run twice at once)."""
    from keeperhub_scheduler.db.migrate import upgrade
    from keeperhub_scheduler.db.urls import redacted

    settings = settings_and_logging()
    url = settings.database
    revision = upgrade(url)
    typer.echo(f"database {redacted(url)} is at revision {revision}")


@app.command()
def dispatcher(
    once: Annotated[
        bool, typer.Option("--once", help="One pass, then exit (for a Kubernetes CronJob).")
    ] = False,
) -> None:
    """Decide due occurrences and relay them to the queue (long-running by default)."""
    from keeperhub_scheduler.processes import run_dispatcher

    settings = settings_and_logging()
    raise typer.Exit(asyncio.run(run_dispatcher(settings, once=once)))


@app.command()
def executor() -> None:
    """Consume the queue and call KeeperHub for each run (drains on SIGTERM)."""
    from keeperhub_scheduler.processes import run_executor

    settings = settings_and_logging()
    raise typer.Exit(asyncio.run(run_executor(settings)))


@queue_app.command("setup")
def queue_setup() -> None:
    """Create the queue and its DLQ with a redrive policy and the visibility timeout."""
    from keeperhub_scheduler.transport import set_up_queues

    settings = settings_and_logging()
    urls = asyncio.run(set_up_queues(settings))
    typer.echo(json.dumps(urls, indent=2))


@app.command()
def dev(
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="Also run a KeeperHub stand-in and a sample 5-second schedule."
        ),
    ] = False,
    standin_port: Annotated[int, typer.Option(help="Port of the demo's stand-in.")] = 3000,
) -> None:
    """Run dispatcher, executor and API in one process on SQLite (no SQS): the embedded mode."""
    import os

    from rich.console import Console

    from keeperhub_scheduler.dev.embedded import DevOptions, run_dev

    # The embedded mode needs nothing configured: a SQLite file here, no queue, text logs (quiet
    # in the demo, where the live table is the show).
    database = os.environ.get("DATABASE_URL") or DEFAULT_SQLITE_URL
    level = os.environ.get("SCHEDULER_LOG_LEVEL") or ("WARNING" if demo else "INFO")
    fmt = os.environ.get("SCHEDULER_LOG_FORMAT") or "text"
    settings = settings_and_logging(level=level, fmt=fmt, database_url=database, sqs_queue_url=None)
    console = Console()
    options = DevOptions(demo=demo, standin_port=standin_port)
    raise typer.Exit(asyncio.run(run_dev(settings, options, console)))


@app.command()
def standin(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    log: Annotated[Path | None, typer.Option(help="Append every call to this JSONL file.")] = None,
) -> None:
    """Run a KeeperHub stand-in that accepts the execute call (for trying things out and tests)."""
    import os

    import uvicorn

    from keeperhub_scheduler.dev.standin import StandInState, standin_app

    state = StandInState(service_key=os.environ.get("SCHEDULER_SERVICE_API_KEY"), log_path=log)
    uvicorn.run(standin_app(state), host=host, port=port, log_level="warning", access_log=False)


register_management(app)  # schedules, workflows, status, api, prune: see cli.manage


def main() -> None:
    """Console entry point: every error is one line on stderr (secrets scrubbed) and an exit code:
    2 for bad input or configuration, 1 for anything else (the database or a queue that does not
    answer, or a bug: its type and message, with the traceback left to the logs)."""
    try:
        app()
    except (ConfigError, InvalidScheduleError) as error:
        _exit(2, str(error))
    except SchedulerError as error:
        _exit(1, str(error))
    except Exception as error:
        # SQLAlchemy is imported only once something failed: --help does not load it.
        from sqlalchemy.exc import DBAPIError

        _exit(1, database_problem(error) if isinstance(error, DBAPIError) else describe(error))


def _exit(code: int, message: str) -> NoReturn:
    typer.echo(scrubbed(f"error: {message}"), err=True)
    sys.exit(code)
