"""One delivery, from the queue to KeeperHub and back: verify, claim, call, record, settle.

Every path ends by settling the delivery exactly once: deleted (done, skipped or a duplicate),
made visible again after a backoff (a retryable failure), or moved to the dead-letter queue (a
message that must never run, or a run out of attempts). The claim and the record are the run
store's (``db.store``): one statement each, batched with those of concurrent deliveries on
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.backoff import Backoff
from keeperhub_scheduler.db import store_for
from keeperhub_scheduler.db.store import MISMATCH, Refusal, Skipped
from keeperhub_scheduler.executor.legacy import occurrence_for
from keeperhub_scheduler.keeperhub.client import RETRY, CallResult, KeeperHubClient
from keeperhub_scheduler.runs import ClaimedRun, RunRef, RunStatus
from keeperhub_scheduler.telemetry import metrics
from keeperhub_scheduler.telemetry.logs import describe
from keeperhub_scheduler.transport.base import (
    LONGEST_DELAY_SECONDS,
    Delivery,
    Transport,
    TransportError,
)
from keeperhub_scheduler.transport.messages import InvalidMessageError, LegacyMessage, decode

log = logging.getLogger("keeperhub_scheduler.executor")
T = TypeVar("T")
PATIENCE_SECONDS = 60.0  # how long an answer already had is kept trying to be written


@dataclass(frozen=True)
class Settlement:
    """How a delivery ends once its outcome is recorded ("none": leave it to reappear)."""

    kind: Literal["delete", "retry", "dead_letter", "none"]
    delay: int = 0
    reason: str = ""


@dataclass(frozen=True)
class ExecutionPolicy:
    signing_key: bytes | None
    require_signature: bool
    accept_legacy: bool = True
    max_receive_count: int = 10  # the queue's redrive: on this receive we dead-letter ourselves
    max_attempts: int = 5
    retry_base: float = 2.0
    retry_max: float = 300.0
    visibility_timeout: int = 30
    handoff_seconds: int = 2
    max_delay_seconds: int = LONGEST_DELAY_SECONDS  # the transport's (see build_executor)

    @property
    def step_seconds(self) -> int:
        """How far ahead a heartbeat keeps a message invisible: the hand-off, never the full
        visibility timeout, so the runs of an executor that dies (received or mid-call) are
        visible again within this many seconds; a live one's are extended beat after beat."""
        return min(self.handoff_seconds, self.visibility_timeout)

    @property
    def receive_seconds(self) -> int:
        """How long a received message stays invisible before its call starts: half a step (at
        least a second). Until then only the claim guards it, and the claim is atomic: a copy
        that reappears while the first receiver is still claiming finds the run held and waits.
        So a killed executor's received, never started messages (the long polls it had open when
        it died, too) come back this soon, not a whole step later."""
        return max(1, math.ceil(self.step_seconds / 2))

    @property
    def lease(self) -> timedelta:
        """The lease a claim takes and each heartbeat renews. It ends before the message's step
        does, so the copy that reappears after a death finds the lease lapsed and takes over."""
        return timedelta(seconds=0.75 * self.step_seconds)

    @property
    def heartbeat_seconds(self) -> float:
        """A third of the lease: a beat that fails is tried again, twice, before it lapses."""
        return self.lease.total_seconds() / 3

    def backoff(self, attempt: int, retry_after: float | None) -> int:
        """Exponential with equal jitter, at least ``Retry-After``, at most what the transport can
        delay; whole seconds (rounded up, so the wait is never shorter than KeeperHub asked for)."""
        ceiling = min(self.retry_max, self.retry_base * 2.0 ** (attempt - 1))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return max(1, min(self.max_delay_seconds, math.ceil(delay)))


class DeliveryHandler:
    def __init__(
        self,
        engine: AsyncEngine,
        transport: Transport,
        keeperhub: KeeperHubClient,
        policy: ExecutionPolicy,
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.keeperhub = keeperhub
        self.policy = policy
        self.store = store_for(engine)
        # Read when /metrics is scraped: a plain count costs nothing per call, where a gauge's
        # inc and dec would take its lock twice a run.
        self.calls_in_flight = 0
        metrics.IN_FLIGHT.set_function(lambda: self.calls_in_flight)

    async def handle(self, delivery: Delivery) -> None:
        try:
            await self._handle(delivery)
        except Exception as error:
            if delivery.receive_count >= self.policy.max_receive_count:
                # The queue's redrive would move it on the next receive without a word: move it
                # now, with what we know.
                reason = f"not settled after {delivery.receive_count} receives: " + describe(error)
                await self._dead_letter(delivery, reason, "unsettled")
                return
            # Unsettled (a database outage, a bug): keep the message away for the full
            # visibility timeout rather than the short hand-off, so an outage does not become a
            # storm of redeliveries, each counting towards the queue's maxReceiveCount.
            with contextlib.suppress(Exception):
                await self.transport.extend(delivery, self.policy.visibility_timeout)
            raise

    async def _handle(self, delivery: Delivery) -> None:
        received = asyncio.get_running_loop().time()  # a slot was free: handled as received
        message = await self._decode(delivery)
        if message is None:
            return
        if isinstance(message, LegacyMessage):
            run = await self._legacy_run(delivery, message)
            if run is None:
                return
        else:
            run = message
        claimed = await self.store.claim(run, self.policy.lease)
        if isinstance(claimed, Refusal):
            await self._refused(delivery, run.run_id, claimed)
        elif isinstance(claimed, Skipped):
            log.info("run skipped", extra={"run_id": run.run_id, "reason": claimed.reason})
            metrics.labelled(metrics.SKIPPED, "executor", claimed.reason).inc()
            await self._settle(self.transport.delete(delivery))
        elif claimed.attempt > self.policy.max_attempts:
            reason = "attempts exhausted before this delivery"
            await self._settle_as(delivery, await self._give_up(claimed, None, reason))
        else:
            await self._execute(delivery, claimed, received)

    async def _decode(self, delivery: Delivery) -> RunRef | LegacyMessage | None:
        """The message, or None once it is dead-lettered with the reason it cannot run."""
        if delivery.unreadable_attributes:
            names = ", ".join(sorted(delivery.unreadable_attributes))
            await self._dead_letter(
                delivery, f"invalid message: attributes not of type String: {names}", "invalid"
            )
            return None
        try:
            return decode(
                delivery.body,
                delivery.attributes,
                self.policy.signing_key,
                require_signature=self.policy.require_signature,
                accept_legacy=self.policy.accept_legacy,
            )
        except InvalidMessageError as error:
            reason = f"invalid message: {error.reason}"
        except Exception as error:  # a parser's surprise is still a poison message, not a loop
            reason = "undecodable message: " + describe(error)
        await self._dead_letter(delivery, reason, "invalid")
        return None

    async def _legacy_run(self, delivery: Delivery, message: LegacyMessage) -> RunRef | None:
        """The run of the occurrence a legacy message was sent for (``legacy``), or None once
        the message is dropped (no such schedule) or dead-lettered (any other refusal)."""
        found = await self.store.legacy_schedule(message.schedule_id)
        if found is None:
            log.info(
                "legacy message for a schedule that does not exist; dropped",
                extra={"schedule_id": message.schedule_id},
            )
            metrics.labelled(metrics.SKIPPED, "executor", "schedule_deleted").inc()
            await self._settle(self.transport.delete(delivery))
            return None
        schedule, now = found
        occurrence = occurrence_for(schedule, message.workflow_id, message.scheduled_for, now)
        if isinstance(occurrence, str):
            await self._dead_letter(delivery, occurrence, "legacy")
            return None
        return await self.store.run_for_occurrence(
            message.schedule_id, occurrence.workflow_id, occurrence.scheduled_for
        )

    async def _refused(self, delivery: Delivery, run_id: str, refusal: Refusal) -> None:
        if refusal.status == MISMATCH:
            reason = "message does not match its run (workflowId or scheduleId)"
            await self._dead_letter(delivery, reason, "mismatch")
            return
        if refusal.status in (RunStatus.RETRYING, RunStatus.RUNNING):
            # A retry's message back before its attempt is due, or a copy of a run another
            # executor holds: look again when that time is up. If the holder died meanwhile, its
            # lease has lapsed and this copy takes the run over; if it finished, the copy is
            # dropped then. (Deleting the copy now could lose the run's only message.)
            delay = min(self.policy.max_delay_seconds, math.ceil(refusal.wait_seconds) + 1)
            await self._settle(self.transport.retry_later(delivery, delay))
            return
        if refusal.status is None:
            # Not a duplicate: the run is gone (deleted with its schedule) or never existed.
            log.info(
                "message for a run that does not exist (deleted, or never made); dropped",
                extra={"run_id": run_id},
            )
            metrics.labelled(metrics.SKIPPED, "executor", "run_missing").inc()
            await self._settle(self.transport.delete(delivery))
            return
        metrics.DUPLICATES_DROPPED.inc()
        log.info("duplicate delivery dropped", extra={"run_id": run_id, "status": refusal.status})
        await self._settle(self.transport.delete(delivery))

    async def _execute(self, delivery: Delivery, run: ClaimedRun, received: float) -> None:
        """Call and record under a live lease and an invisible message (the heartbeat runs until
        the outcome is written, however slow the call or the database); then settle.

        The heartbeat's task is started by a timer at the first beat, a third of the lease after
        the receive: most runs are settled before then, and a timer costs less than a task."""
        loop = asyncio.get_running_loop()
        beating: list[asyncio.Task[None]] = []

        def start_beating() -> None:
            beating.append(asyncio.create_task(self._keep_alive(delivery, run)))

        first_beat = received + self.policy.heartbeat_seconds - loop.time()
        timer = loop.call_later(max(0.0, first_beat), start_beating)
        try:
            result = await self._call(run)
            settlement = await self._record_result(run, result)
        finally:
            timer.cancel()
            for keepalive in beating:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keepalive
        await self._settle_as(delivery, settlement)

    async def _call(self, run: ClaimedRun) -> CallResult:
        self.calls_in_flight += 1
        try:
            result = await self.keeperhub.execute(run)
        finally:
            self.calls_in_flight -= 1
        metrics.labelled(metrics.CALL_DURATION, result.outcome).observe(result.seconds)
        if result.status is not None:
            lag = (datetime.now(UTC) - run.scheduled_for).total_seconds()
            metrics.END_TO_END_LAG.observe(max(0.0, lag))
        return result

    async def _record_result(self, run: ClaimedRun, result: CallResult) -> Settlement:
        if result.outcome != RETRY:
            await self._finish(run, result.outcome, result.status, result.error)
            return Settlement("delete")  # even if not ours any more: the run is finished
        if run.attempt >= self.policy.max_attempts:
            return await self._give_up(run, result.status, result.error)
        delay = self.policy.backoff(run.attempt, result.retry_after)
        retrying = await patiently(
            lambda: self.store.record(
                run, status=RunStatus.RETRYING, http_status=result.status,
                error=result.error, retry_in=delay,
            ),
            run.run_id,
        )  # fmt: skip
        if not retrying:
            return Settlement("none")  # taken over: the message belongs to the new holder
        metrics.RUNS_RETRIED.inc()
        log.info(
            "attempt failed; retrying",
            extra={"run_id": run.run_id, "attempt": run.attempt, "retry_in": delay,
                   "error": result.error},
        )  # fmt: skip
        return Settlement("retry", delay=delay)

    async def _give_up(self, run: ClaimedRun, status: int | None, error: str | None) -> Settlement:
        reason = f"retries exhausted after {run.attempt} attempts: {error}"
        if await self._finish(run, RunStatus.DEAD, status, reason):
            return Settlement("dead_letter", reason=reason)
        return Settlement("none")

    async def _finish(
        self, run: ClaimedRun, status: RunStatus, http_status: int | None, error: str | None
    ) -> bool:
        recorded = await patiently(
            lambda: self.store.record(run, status=status, http_status=http_status, error=error),
            run.run_id,
        )
        if recorded:
            metrics.labelled(metrics.RUNS_FINISHED, status).inc()
            log.info(
                "run finished",
                extra={"run_id": run.run_id, "schedule_id": run.schedule_id, "status": status,
                       "http_status": http_status, "attempt": run.attempt, "error": error},
            )  # fmt: skip
        else:
            log.warning(
                "run was taken over by another executor; not recorded", extra={"run_id": run.run_id}
            )
        return recorded

    async def _keep_alive(self, delivery: Delivery, run: ClaimedRun) -> None:
        """Keep the lease live and the message invisible in short steps, from the first beat
        on: a slow call is never handed to a second executor while this one still beats, and a
        dead one's run is taken over a step later (not a visibility timeout later). A failed beat
        just waits for the next: each step outlasts three beats. The first beat counts from the
        receive, so it comes well inside the shorter visibility a message is received with."""
        while True:
            if await self._extend(delivery, run) is None:
                log.warning("run was taken over during its call", extra={"run_id": run.run_id})
                return
            await asyncio.sleep(self.policy.heartbeat_seconds)

    async def _extend(self, delivery: Delivery, run: ClaimedRun) -> bool | None:
        """Extend the lease, then the visibility, each whether or not the other could be: in a
        database outage the invisible message alone keeps a copy from taking the run over (and
        the answer is written when the database is back). None: the run is no longer ours."""
        extended = True
        try:
            if not await self.store.extend_lease(run, self.policy.lease):
                return None
        except Exception as error:
            extended = _could_not_extend("lease", run, error)
        try:
            await self.transport.extend(delivery, self.policy.step_seconds)
        except Exception as error:
            extended = _could_not_extend("visibility", run, error)
        return extended

    async def _settle_as(self, delivery: Delivery, settlement: Settlement) -> None:
        if settlement.kind == "delete":
            await self._settle(self.transport.delete(delivery))
        elif settlement.kind == "retry":
            await self._settle(self.transport.retry_later(delivery, settlement.delay))
        elif settlement.kind == "dead_letter":
            await self._dead_letter(delivery, settlement.reason, "exhausted")

    async def _dead_letter(self, delivery: Delivery, reason: str, kind: str) -> None:
        metrics.labelled(metrics.DEAD_LETTERED, kind).inc()
        log.warning(
            "message dead-lettered", extra={"reason": reason, "message_id": delivery.message_id}
        )
        await self._settle(self.transport.dead_letter(delivery, reason))

    async def _settle(self, operation: Awaitable[None]) -> None:
        """Settling can fail when the queue is down; the message then simply comes back after its
        visibility timeout and the run's state decides what happens (nothing runs twice)."""
        try:
            await operation
        except TransportError as error:
            log.warning(
                "could not settle a delivery; it will be redelivered", extra={"error": str(error)}
            )


def _could_not_extend(what: str, run: ClaimedRun, error: Exception) -> bool:
    """A blip must not cost the call's answer: the call goes on, the beat is tried again."""
    log.warning(
        f"could not extend the {what}",
        extra={"run_id": run.run_id, "error": f"{type(error).__name__}: {error}"},
    )
    return False


async def patiently(
    operation: Callable[[], Awaitable[T]], run_id: str, patience: float = PATIENCE_SECONDS
) -> T:
    """Write the outcome of a call already made through a database outage: try ``operation``
    until it succeeds, pausing between tries, for up to ``patience`` seconds (the heartbeat keeps
    the message invisible meanwhile); then the last error propagates (the delivery is redelivered,
    the run taken over). Dropping the answer at once would mean calling KeeperHub again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    backoff = Backoff(first=0.5, longest=5.0)
    while True:
        try:
            return await operation()
        except (SQLAlchemyError, OSError) as error:
            pause = backoff.next()
            if loop.time() + pause > deadline:
                raise
            log.warning(
                "could not record an outcome; trying again",
                extra={"run_id": run_id, "retry_in": pause, "error": type(error).__name__},
            )
            await asyncio.sleep(pause)
