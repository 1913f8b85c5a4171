"""The database: tables, engine, migrations, and the run store chosen for the engine's dialect."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.postgres import PostgresStore
from keeperhub_scheduler.db.sqlite import SqliteStore
from keeperhub_scheduler.db.store import RunStore

_STORES: dict[str, type[RunStore]] = {"postgresql": PostgresStore, "sqlite": SqliteStore}


def store_for(engine: AsyncEngine) -> RunStore:
    """The run store of ``engine``'s database: the one place the dialect is chosen."""
    return _STORES[engine.dialect.name](engine)


__all__ = ["RunStore", "store_for"]
