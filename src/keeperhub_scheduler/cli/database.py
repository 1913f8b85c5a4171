"""Which database a management command talks to when ``DATABASE_URL`` is not set.

Right after ``make demo`` the data sits in the embedded database in the working directory
(``dev`` writes ``sqlite:///keeperhub-scheduler.db``), so ``status`` or ``schedules list`` in the
same directory use it, and say so in one line on stderr; elsewhere they stop with a line that
names both ways to point them at a database.
"""

from __future__ import annotations

from pathlib import Path

import typer

from keeperhub_scheduler.config import DEFAULT_SQLITE_URL, ConfigError, Settings

EMBEDDED_FILE = Path(DEFAULT_SQLITE_URL.removeprefix("sqlite:///"))


def management_database(settings: Settings) -> str:
    """``DATABASE_URL``, else the embedded database here if it exists, else a ``ConfigError``."""
    url = settings.database_url.get_secret_value()
    if url:
        return url
    if EMBEDDED_FILE.is_file():
        typer.echo(
            f"note: DATABASE_URL is not set; using the embedded database {DEFAULT_SQLITE_URL}",
            err=True,
        )
        return DEFAULT_SQLITE_URL
    raise ConfigError(
        "DATABASE_URL: required: set it (postgresql://user:password@host:5432/database), or run"
        f" `make demo` in this directory first to use its embedded database {DEFAULT_SQLITE_URL}"
    )
