"""Wake-ups: LISTEN for the schedules trigger's NOTIFY, so a new or edited schedule that became
due earlier than the dispatcher planned to wake is picked up at once, not within a tick.

PostgreSQL's own (``PostgresStore.due_listener``); SQLite has no notifications, and the dispatcher
then wakes at its ticks only."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from keeperhub_scheduler.backoff import Backoff
from keeperhub_scheduler.telemetry.logs import RepeatedFailure

CHANNEL = "keeperhub_scheduler_due"
log = logging.getLogger("keeperhub_scheduler.dispatcher")


class DueListener:
    def __init__(self, database_url: str) -> None:
        # libpq's form (db.urls.libpq_url): its URI parser cuts a password at a bare "@"
        # differently from SQLAlchemy's, so the password arrives percent-encoded.
        self.database_url = database_url
        self.woken = asyncio.Event()
        self._failures = RepeatedFailure(
            log, "LISTEN connection", level=logging.WARNING, traceback=False
        )
        self._backoff = Backoff(first=0.5, longest=30.0)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as error:
                # Without notifications the dispatcher still ticks every second: degrade, retry.
                delay = self._backoff.next()
                self._failures.failed(error, retry_in_seconds=delay)
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, application_name="keeperhub-scheduler-listen"
        ) as connection:
            await connection.execute(f"LISTEN {CHANNEL}")
            self._failures.succeeded()
            self._backoff.reset()
            async for _ in connection.notifies():
                self.woken.set()
