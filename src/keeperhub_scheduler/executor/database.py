"""The executor's connections are not pinged before use (each is one statement; a ping would add
a round trip to it), so a connection that died since its last use (a PostgreSQL restart, a
failover) fails the statement instead. ``once_more_if_disconnected`` runs it again on a fresh
connection: the pool has already discarded the dead ones by then.

Every operation passed here is safe to run twice: a claim that did commit before its connection
broke finds the run under a live lease the second time (and the message comes back when it
ends), and a record that did commit finds the run no longer ``running``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger("keeperhub_scheduler.executor")

T = TypeVar("T")


async def once_more_if_disconnected(operation: Callable[[], Awaitable[T]]) -> T:
    try:
        return await operation()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        log.warning("database connection was lost; running the statement once more")
        return await operation()
