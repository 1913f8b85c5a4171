"""Connections: one async engine per process, and the one clock claims are decided by."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Float, cast, event, func, literal
from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from keeperhub_scheduler.db.types import UTCDateTime

APPLICATION_NAME = "keeperhub-scheduler"
T = TypeVar("T")
# The executor's store logs its fallbacks under the executor's name; a statement run again on a
# fresh connection (either process) under the database's.
executor_log = logging.getLogger("keeperhub_scheduler.executor")
db_log = logging.getLogger("keeperhub_scheduler.db")

# Our sessions set this custom setting, so the trigger on workflow_schedules can tell our writes
# (which plan next_run_at themselves) from KeeperHub's (which must be re-planned). See migrations.
WRITER_SETTING = "keeperhub_scheduler.writer"


def sqlalchemy_url(database_url: str, *, driver: str = "async") -> URL:
    """Turn the spec's ``postgresql://`` (or ``sqlite:///``) URL into one with our driver."""
    url = make_url(database_url.replace("postgres://", "postgresql://", 1))
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite+aiosqlite" if driver == "async" else "sqlite")
    return url.set(drivername="postgresql+psycopg")


def create_engine(
    database_url: str, *, pool_size: int = 10, pre_ping: bool = True, overflow: int | None = None
) -> AsyncEngine:
    url = sqlalchemy_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        # Bursts; keeps many processes under max_connections. None: half the pool.
        max_overflow=pool_size // 2 if overflow is None else overflow,
        pool_pre_ping=pre_ping,  # the executor and the dispatcher opt out: see processes
        connect_args={"application_name": APPLICATION_NAME},
    )
    event.listen(engine.sync_engine, "connect", _mark_our_sessions)
    return engine


def _mark_our_sessions(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Our sessions speak UTC whatever the server's default: psycopg then hands back instants
    # already in ``datetime.UTC``, which the claim reads without converting each one.
    cursor.execute(f"SET {WRITER_SETTING} = 'on'; SET TimeZone = 'UTC'")
    cursor.close()
    dbapi_connection.commit()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the embedded API read while the dispatcher writes; FKs give the cascades.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def seconds_between(
    connection: AsyncConnection, later: datetime, earlier: ColumnElement[Any]
) -> ColumnElement[float]:
    """SQL for the seconds from ``earlier`` (a column) to ``later``, in the connection's dialect
    (SQLite has no interval arithmetic: Julian days stand in)."""
    instant = literal(later, UTCDateTime())
    if connection.dialect.name == "sqlite":
        return (func.julianday(instant) - func.julianday(earlier)) * 86400.0
    return cast(func.extract("epoch", instant - earlier), Float)


async def database_now(connection: AsyncConnection) -> datetime:
    """The instant claims are decided at: PostgreSQL's transaction clock, or ours for SQLite.

    Every dispatcher and executor reads the same PostgreSQL clock, so their own clocks may drift
    without two of them disagreeing on what is due.
    """
    if connection.dialect.name == "sqlite":
        return datetime.now(UTC)
    value = (await connection.exec_driver_sql("SELECT now()")).scalar_one()
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


async def once_more_if_disconnected(operation: Callable[[], Awaitable[T]]) -> T:
    """Run ``operation`` again on a fresh connection when its connection had died.

    The executor's and the dispatcher's connections are not pinged before use (a ping is a round
    trip of its own before every statement or transaction), so one that died since its last use
    (a PostgreSQL restart, a failover) fails its first statement instead; the pool has discarded
    the dead ones by then. Every operation passed here is safe to run twice: a claim that did
    commit finds the run under a live lease (the executor's) or the schedule advanced (the
    dispatcher's) the second time, a record finds the run no longer running, and marking or
    leasing runs already marked or leased changes nothing.
    """
    try:
        return await operation()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        db_log.warning("database connection was lost; running the statement once more")
        return await operation()
