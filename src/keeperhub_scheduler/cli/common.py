"""What the management commands share: the target (database or API), running a command on it
with every error turned into one line and an exit code, and parsing instants and durations.
The exit codes are listed in ``cli.manage``'s docstring.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError

from keeperhub_scheduler.cli import render
from keeperhub_scheduler.cli.backend import (
    BAD_INPUT,
    CONFLICT,
    FAILED,
    NOT_FOUND,
    Backend,
    CliError,
    open_backend,
)
from keeperhub_scheduler.cli.database import management_database
from keeperhub_scheduler.cli.startup import scrubbed
from keeperhub_scheduler.config import ConfigError, Settings
from keeperhub_scheduler.errors import ConflictError, InvalidScheduleError, NotFoundError
from keeperhub_scheduler.management.models import error_message, field_name

if TYPE_CHECKING:  # SQLAlchemy loads when a command runs, not for --help
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]
ApiUrl = Annotated[
    str | None,
    typer.Option(envvar="SCHEDULER_API_URL", help="Talk to this API instead of the database."),
]
Token = Annotated[
    str | None,
    typer.Option(
        envvar="SCHEDULER_API_TOKEN", help="Bearer token for --api-url.", show_default=False
    ),
]
InstantText = Annotated[str | None, typer.Option(help="ISO 8601; UTC when no offset is given.")]


@dataclass(frozen=True)
class Target:
    api_url: str | None
    token: str | None


def run(target: Target, work: Callable[[Backend], Awaitable[T]]) -> T:
    """Run ``work`` on the target's backend; every error becomes one line and its exit code."""

    async def main() -> T:
        async with open_backend(target.api_url, target.token) as backend:
            return await work(backend)

    return guarded(main)


def run_on_database(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``work`` on an engine of ``DATABASE_URL`` (commands that only exist there)."""

    from keeperhub_scheduler.db.engine import create_engine

    async def main() -> T:
        engine = create_engine(management_database(settings), pool_size=2)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return guarded(main)


def guarded(main: Callable[[], Awaitable[T]]) -> T:
    from sqlalchemy.exc import DBAPIError

    async def wrapped() -> T:
        return await main()

    try:
        return asyncio.run(wrapped())
    except CliError as error:
        fail(error.code, error.message)
    except ValidationError as error:
        fail(BAD_INPUT, "; ".join(_problem(e) for e in error.errors()))
    except InvalidScheduleError as error:
        fail(BAD_INPUT, f"{error.field}: {error.message}")
    except ConfigError as error:
        fail(BAD_INPUT, str(error))
    except NotFoundError as error:
        fail(NOT_FOUND, str(error))
    except ConflictError as error:
        fail(CONFLICT, str(error))
    except DBAPIError as error:  # OperationalError and ProgrammingError are DBAPIErrors
        fail(FAILED, database_problem(error))


def fail(code: int, message: str) -> NoReturn:
    typer.echo(scrubbed(f"error: {error_message(message)}"), err=True)
    raise typer.Exit(code)


def _problem(error: Any) -> str:
    return f"{field_name(tuple(error['loc']))}: {error_message(str(error['msg']))}"


def database_problem(error: DBAPIError) -> str:
    text = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    if (text.startswith("relation") and "does not exist" in text) or "no such table" in text:
        return f"the database has no scheduler tables ({text}); run: keeperhub-scheduler migrate"
    return f"database error: {text}"


def instant(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(BAD_INPUT, f"{option}: {value!r} is not an ISO 8601 instant")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


DURATION = re.compile(r"(\d+)([smhd])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(value: str | None, option: str) -> int | None:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` as seconds."""
    if value is None:
        return None
    text = value.strip().lower()
    if text.isdigit():
        return int(text)
    parts = DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        fail(BAD_INPUT, f"{option}: {value!r} is not a duration like 90s, 15m, 2h or 1d")
    return sum(int(amount) * UNITS[unit] for amount, unit in parts)


def show(as_json: bool, data: Any, table: Callable[[Any], None]) -> None:
    if as_json:
        render.emit_json(data)
    else:
        table(data)


def build(model: type[T], **values: Any) -> T:
    """A request model from options; invalid values exit 2 naming the field."""
    try:
        return model(**values)
    except ValidationError as error:
        fail(BAD_INPUT, "; ".join(_problem(e) for e in error.errors()))
