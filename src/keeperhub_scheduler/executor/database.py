"""Writing an outcome through a database outage.

``patiently`` is for writing the outcome of a call already made: through a database outage it
keeps trying (while the heartbeat keeps the message invisible) instead of dropping the answer,
which would mean calling KeeperHub again once the run's lease lapses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("keeperhub_scheduler.executor")

T = TypeVar("T")

PATIENCE_SECONDS = 60.0
FIRST_PAUSE_SECONDS = 0.5
LONGEST_PAUSE_SECONDS = 5.0


async def patiently(
    operation: Callable[[], Awaitable[T]], run_id: str, patience: float = PATIENCE_SECONDS
) -> T:
    """Run ``operation`` until it succeeds, pausing between tries, for up to ``patience``
    seconds; then the last error propagates (the delivery is redelivered, the run taken over)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    pause = FIRST_PAUSE_SECONDS
    while True:
        try:
            return await operation()
        except (SQLAlchemyError, OSError) as error:
            if loop.time() + pause > deadline:
                raise
            log.warning(
                "could not record an outcome; trying again",
                extra={"run_id": run_id, "retry_in": pause, "error": type(error).__name__},
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
