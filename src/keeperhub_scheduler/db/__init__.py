"""The database: tables, engine, migrations, and the run store chosen for the engine's dialect."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from keeperhub_scheduler.db.store import RunStore


def store_for(engine: AsyncEngine) -> RunStore:
    """The run store of ``engine``'s database: the one place the dialect is chosen.

    The stores are imported here, not at the top, so that importing ``db.urls`` (as the settings
    do, and with them ``--help``) does not load both dialects' drivers."""
    from keeperhub_scheduler.db.postgres import PostgresStore
    from keeperhub_scheduler.db.sqlite import SqliteStore

    stores: dict[str, type[RunStore]] = {"postgresql": PostgresStore, "sqlite": SqliteStore}
    return stores[engine.dialect.name](engine)


def __getattr__(name: str) -> object:
    if name == "RunStore":  # re-exported, on first use
        from keeperhub_scheduler.db.store import RunStore

        return RunStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RunStore", "store_for"]
