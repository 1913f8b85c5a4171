"""``keeperhub-scheduler migrate``: bring a database to the current schema, safely and repeatably.

Running it again is a no-op; running two at once is safe (the second waits on an advisory lock and
then finds nothing to do); on a database with KeeperHub's own tables it only adds what is missing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from keeperhub_scheduler.db.engine import sqlalchemy_url

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(database_url: str) -> str:
    """Apply every pending migration; return the revision the database is at afterwards."""
    engine = create_engine(sqlalchemy_url(database_url, driver="sync"))
    try:
        with engine.connect() as connection:
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
            return current_revision_of(connection) or "none"
    finally:
        engine.dispose()


def current_revision(database_url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(database_url, driver="sync"))
    try:
        with engine.connect() as connection:
            return current_revision_of(connection)
    finally:
        engine.dispose()


def current_revision_of(connection: object) -> str | None:
    context = MigrationContext.configure(
        connection,  # type: ignore[arg-type]
        opts={"version_table": "keeperhub_scheduler_version"},
    )
    return context.get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head
