"""The dispatcher: claim due occurrences, relay them, repeat.

``run_once`` is one pass (the spec's CronJob); ``run_forever`` sleeps until the earliest
``next_run_at`` (at most ``max_sleep``), wakes at once on a PostgreSQL NOTIFY from the schedules
trigger, and so fires with sub-second precision. Any number of either may run at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.backoff import Backoff
from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.db import store_for
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import workflow_schedules
from keeperhub_scheduler.dispatcher.claim import ClaimPlan, ClaimResult, claim_due
from keeperhub_scheduler.dispatcher.retention import prune_runs
from keeperhub_scheduler.dispatcher.stream import RelayResult, RelayStream
from keeperhub_scheduler.dispatcher.unpark import unpark
from keeperhub_scheduler.runs import RunStatus
from keeperhub_scheduler.telemetry import metrics
from keeperhub_scheduler.telemetry.health import Heartbeat
from keeperhub_scheduler.telemetry.logs import RepeatedFailure
from keeperhub_scheduler.transport.base import Transport

log = logging.getLogger("keeperhub_scheduler.dispatcher")

SWEEP_EVERY_SECONDS = 30.0
# Rows parked by an older engine are re-read at start, then this often (a rollout's old
# dispatchers may park a row again until they are gone).
UNPARK_EVERY_SECONDS = 300.0
IDLE_LOG_EVERY_SECONDS = 60.0


@dataclass
class PassResult:
    schedules: int = 0
    fired: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    relayed: int = 0
    relay_failed: int = 0
    swept: int = 0
    pending: int = 0  # the whole outbox, whoever holds the runs' leases
    left_over: int = 0  # pending, due and unleased: what a pass could have sent but did not
    seconds: float = 0.0

    @property
    def busy(self) -> bool:
        return bool(self.schedules or self.relayed or self.relay_failed or self.swept)

    def log_fields(self) -> dict[str, object]:
        return {
            "schedules": self.schedules,
            "fired": self.fired,
            "skipped": dict(self.skipped),
            "invalid": self.invalid,
            "relayed": self.relayed,
            "relay_failed": self.relay_failed,
            "swept": self.swept,
            "pending": self.pending,
            "left_over": self.left_over,
            "seconds": round(self.seconds, 4),
        }


class Dispatcher:
    def __init__(self, engine: AsyncEngine, transport: Transport, settings: Settings) -> None:
        self.engine = engine
        self.store = store_for(engine)
        self.transport = transport
        self.settings = settings
        self.lease = timedelta(seconds=settings.scheduler_relay_lease_seconds)
        self.plan = ClaimPlan(
            batch_size=settings.scheduler_claim_batch_size,
            grace=timedelta(seconds=settings.scheduler_misfire_grace_seconds),
            lease=self.lease,
        )
        self.heartbeat = Heartbeat(max_silence=max(30.0, settings.scheduler_max_sleep_seconds * 10))
        self._relay_backoff = Backoff(first=0.5, longest=30.0)  # while the queue refuses runs
        self._relay_not_before = 0.0
        self._next_sweep = 0.0
        self._next_unpark = 0.0

    # --- one pass -------------------------------------------------------------------------
    async def run_pass(self) -> PassResult:
        """Claim everything due and send it, and whatever else is pending, as it is claimed."""
        started = time.monotonic()
        sending = time.monotonic() >= self._relay_not_before
        stream = RelayStream(
            self.store,
            self.transport,
            signing_key=self.settings.signing_key_bytes,
            concurrency=self.settings.scheduler_relay_concurrency,
            buffer=max(2 * self.settings.scheduler_claim_batch_size, 2000),
            probe=self._relay_backoff.failures > 0,
            lease=self.lease,
        )
        claim_done = asyncio.Event()
        async with stream:
            claim = await _first_error_unwrapped(self._feed(stream, sending, claim_done))
        relayed = stream.result
        if claim.schedules:
            self.heartbeat.worked()
        self._note_relay(relayed)
        result = PassResult(
            schedules=claim.schedules,
            fired=claim.fired,
            skipped=claim.skipped,
            invalid=claim.invalid,
            relayed=relayed.sent,
            relay_failed=relayed.failed,
        )
        result.swept = await self._sweep_if_due()
        result.pending, result.left_over = await self.store.count_pending()
        result.seconds = time.monotonic() - started
        self._record(result, relayed)
        return result

    async def _feed(
        self, stream: RelayStream, sending: bool, claim_done: asyncio.Event
    ) -> ClaimResult:
        """The claim and the leftover feed side by side; if one fails, the other is cancelled
        (nothing may put runs into the stream after it is closed)."""
        async with asyncio.TaskGroup() as group:
            claiming = group.create_task(
                claim_due(self.store, self.plan, stream if sending else None, claim_done)
            )
            if sending:
                group.create_task(self._feed_leftovers(stream, claim_done))
        return claiming.result()

    async def _feed_leftovers(self, stream: RelayStream, claim_done: asyncio.Event) -> None:
        """Send pending runs nobody holds a lease on: a crashed pass's, failed sends, manual runs.

        Runs alongside the claim, and once more after it (the claim may leave some behind).
        """
        limit = self.settings.scheduler_relay_batch_size
        while not stream.failed:
            await stream.wait_for_room(limit)
            runs = await self.store.lease_pending(limit, self.lease)
            await stream.put(runs)
            if len(runs) < limit:
                if claim_done.is_set():
                    return
                await claim_done.wait()

    def _note_relay(self, result: RelayResult) -> None:
        """Back off after a failed send (queue outage): 0.5 s doubling to 30 s, reset on success."""
        if result.failed:
            delay = self._relay_backoff.next()
            self._relay_not_before = time.monotonic() + delay
            log.warning(
                "queue refused runs; they stay pending",
                extra={"failed": result.failed, "retry_in_seconds": delay},
            )
        elif result.sent:
            self._relay_backoff.reset()

    async def _sweep_if_due(self) -> int:
        if time.monotonic() >= self._next_unpark:
            self._next_unpark = time.monotonic() + UNPARK_EVERY_SECONDS
            await unpark(self.engine)
        if time.monotonic() < self._next_sweep:
            return 0
        self._next_sweep = time.monotonic() + SWEEP_EVERY_SECONDS
        visibility = self.settings.scheduler_visibility_timeout_seconds
        return await self.store.sweep_stale(
            stale_enqueued=timedelta(seconds=self.settings.scheduler_stale_enqueued_seconds),
            lease_grace=timedelta(seconds=2 * visibility + 60),
        )

    def _record(self, result: PassResult, relayed: RelayResult) -> None:
        metrics.OCCURRENCES_DECIDED.labels("fired").inc(result.fired)
        for reason, count in result.skipped.items():
            metrics.OCCURRENCES_DECIDED.labels(RunStatus.SKIPPED).inc(count)
            metrics.SKIPPED.labels("dispatcher", reason).inc(count)
        metrics.RUNS_RELAYED.inc(result.relayed)
        metrics.RELAY_FAILURES.inc(result.relay_failed)
        metrics.RUNS_SWEPT.inc(result.swept)
        metrics.INVALID_SCHEDULES.inc(result.invalid)
        metrics.OUTBOX_PENDING.set(result.pending)
        metrics.DISPATCH_LAG.observe_many(max(0.0, lag) for lag in relayed.lags)

    # --- the two modes --------------------------------------------------------------------
    async def run_once(self) -> bool:
        """One pass for the CronJob: True when everything due was decided and relayed.

        Runs another dispatcher holds a live lease on are that dispatcher's to send, and do not
        count against this pass. A pass that sent nothing asks the queue whether it answers: a
        CronJob run while the queue is down fails, whoever holds the pending runs.
        """
        self._next_sweep = 0.0
        result = await self.run_pass()
        reachable = result.relayed > 0 or await self._queue_answers()
        log.info("dispatcher pass", extra=result.log_fields() | {"queue_reachable": reachable})
        return reachable and result.relay_failed == 0 and result.left_over == 0

    async def _queue_answers(self) -> bool:
        try:
            await self.transport.check()
        except Exception as error:
            log.warning("the queue does not answer", extra={"error": type(error).__name__})
            return False
        return True

    async def run_forever(self, stop: asyncio.Event) -> None:
        listener = self.store.due_listener()
        if listener:
            listener.start()
        retention = asyncio.create_task(self._prune_periodically(stop))
        failures = RepeatedFailure(log, "dispatcher pass")  # a database outage: not a flood
        last_log = 0.0
        try:
            while not stop.is_set():
                try:
                    result = await self.run_pass()
                    sleep = await self._sleep_seconds(result)
                except Exception as error:
                    failures.failed(error, retry_in_seconds=1.0)
                    # The loop turned: liveness holds (a restart would not bring the database
                    # back); /readyz is what says the database does not answer.
                    self.heartbeat.beat()
                    await _wait(stop, 1.0)
                    continue
                failures.succeeded()
                self.heartbeat.beat()
                if result.busy or time.monotonic() - last_log >= IDLE_LOG_EVERY_SECONDS:
                    log.info("dispatcher pass", extra=result.log_fields())
                    last_log = time.monotonic()
                await _wait(stop, sleep, listener.woken if listener else None)
        finally:
            retention.cancel()
            await asyncio.wait([retention])  # let it finish cancelling, without raising its error
            if listener:
                await listener.stop()

    async def _prune_periodically(self, stop: asyncio.Event) -> None:
        """Retention beside the loop, so the runs table stays bounded without a separate job.

        Every dispatcher prunes: the deletes skip locked rows and only ever remove finished runs,
        so several at once share the work instead of colliding. A failure waits for the next turn.
        """
        every = self.settings.scheduler_retention_every_seconds
        if every <= 0:
            return
        while not stop.is_set():
            await _wait(stop, every)
            if stop.is_set():
                return
            try:
                await prune_runs(self.engine, self.settings)
            except Exception:
                log.exception("retention failed; trying again at the next turn")

    async def _sleep_seconds(self, result: PassResult) -> float:
        """Until the earliest next_run_at, capped; at once when sendable runs are left over."""
        cap = self.settings.scheduler_max_sleep_seconds
        if result.left_over and time.monotonic() >= self._relay_not_before:
            return 0.0
        async with self.engine.connect() as connection:
            now = await database_now(connection)
            earliest = (
                await connection.execute(
                    select(func.min(workflow_schedules.c.next_run_at)).where(
                        workflow_schedules.c.enabled
                    )
                )
            ).scalar_one()
        if not isinstance(earliest, datetime):
            return cap
        return max(0.0, min(cap, (earliest - now).total_seconds()))


async def _first_error_unwrapped(work: Awaitable[ClaimResult]) -> ClaimResult:
    """``work``, raising the first error of a task group as itself (the CLI and the logs then
    name the database error, not an ExceptionGroup)."""
    try:
        return await work
    except ExceptionGroup as group:
        raise group.exceptions[0] from group


async def _wait(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    """Sleep up to ``seconds``; return early when ``stop`` or ``wake`` is set."""
    if seconds <= 0:
        return
    events = [stop] + ([wake] if wake else [])
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    if wake is not None:
        wake.clear()
