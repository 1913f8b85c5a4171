"""Alembic environment: runs our migrations on the connection that ``db.migrate`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from keeperhub_scheduler.db.engine import WRITER_SETTING
from keeperhub_scheduler.db.tables import metadata

# Any fixed number: it names the advisory lock that lets only one migrator work at a time.
MIGRATION_LOCK_KEY = 0x6B68_7363  # "khsc"

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # Our own version table, so we never collide with an alembic_version KeeperHub might have.
    version_table="keeperhub_scheduler_version",
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Two migrators at once: the second waits here, then finds the version table at head.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.execute(text(f"SET LOCAL {WRITER_SETTING} = 'on'"))
    context.run_migrations()
