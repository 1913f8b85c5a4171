"""Heartbeats in the database: each dispatcher and executor loop writes its own row every few
seconds, so the management API (another process) can show when each last turned and worked.

The writer is a task beside the loop, not part of it: one small upsert per ``every`` seconds,
whatever the load, and nothing on a run's path. A failed write is logged and tried at the next
turn; it never stops the loop it reports on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.heartbeats import Beat, forget_beats_before, record_beat
from keeperhub_scheduler.telemetry.health import Heartbeat

log = logging.getLogger("keeperhub_scheduler.beats")

EVERY_SECONDS = 5.0
FORGET_AFTER = timedelta(days=7)


class BeatWriter:
    def __init__(
        self, engine: AsyncEngine, role: str, heartbeat: Heartbeat, every: float = EVERY_SECONDS
    ) -> None:
        self.engine = engine
        self.role = role
        self.heartbeat = heartbeat
        self.every = every
        host = socket.gethostname()
        self.host = host
        self.process_id = f"{role}@{host}:{os.getpid()}:{secrets.token_hex(3)}"
        self.started: datetime | None = None

    async def write(self) -> None:
        """One row, with the loop's last turn and last work as instants of the database clock."""
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            if self.started is None:
                self.started = now
                await forget_beats_before(connection, now - FORGET_AFTER)
            await record_beat(connection, self._beat(now))

    def _beat(self, now: datetime) -> Beat:
        mono = time.monotonic()
        work = self.heartbeat.last_work
        assert self.started is not None
        return Beat(
            process_id=self.process_id,
            role=self.role,
            host=self.host,
            pid=os.getpid(),
            started_at=self.started,
            beat_at=now - timedelta(seconds=max(0.0, mono - self.heartbeat.last)),
            last_work_at=None if work is None else now - timedelta(seconds=max(0.0, mono - work)),
            max_silence_seconds=int(self.heartbeat.max_silence),
        )

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.write()
            except Exception as error:
                log.warning("heartbeat not written", extra={"error": type(error).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)
