"""Wake-ups: LISTEN for the schedules trigger's NOTIFY, so a new or edited schedule that became
due earlier than the dispatcher planned to wake is picked up at once, not within a tick."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.db.urls import libpq_url
from keeperhub_scheduler.telemetry.logs import RepeatedFailure

CHANNEL = "keeperhub_scheduler_due"
log = logging.getLogger("keeperhub_scheduler.dispatcher")


class DueListener:
    def __init__(self, settings: Settings) -> None:
        # Re-encoded: libpq's own URI parser cuts a password at a bare "@" differently.
        self.database_url = libpq_url(settings.database_url.get_secret_value())
        self.woken = asyncio.Event()
        self._failures = RepeatedFailure(
            log, "LISTEN connection", level=logging.WARNING, traceback=False
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as error:
                # Without notifications the dispatcher still ticks every second: degrade, retry.
                self._failures.failed(error, retry_in_seconds=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, application_name="keeperhub-scheduler-listen"
        ) as connection:
            await connection.execute(f"LISTEN {CHANNEL}")
            self._failures.succeeded()
            async for _ in connection.notifies():
                self.woken.set()
