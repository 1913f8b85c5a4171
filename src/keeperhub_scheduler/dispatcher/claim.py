"""The dispatcher's claim: due schedules in, decided runs out, in one transaction per batch.

``claim_due`` claims batches until a short one. Each batch (``claim_batch``) locks up to its size
of due schedules with ``FOR UPDATE SKIP LOCKED`` (so any number of dispatchers share the work
without waiting on each other), asks ``decide`` what each one's occurrences since the last
decision are, inserts the runs (``ON CONFLICT DO NOTHING`` on (schedule_id, scheduled_for): the
dedup key) and advances each schedule's ``next_run_at`` and ``decided_through``; the statements
are the run store's (``db.store``). Given a lease, the new pending runs are inserted already
leased to this dispatcher and handed to the sender once the batch has committed, without asking
the database for them again (see ``stream``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from keeperhub_scheduler.db.engine import database_now, once_more_if_disconnected
from keeperhub_scheduler.db.new_runs import NewRuns
from keeperhub_scheduler.db.statements import DueSchedule
from keeperhub_scheduler.db.store import RunStore
from keeperhub_scheduler.dispatcher.decide import Decision, ScheduleState, decide
from keeperhub_scheduler.errors import InvalidScheduleError
from keeperhub_scheduler.runs import RunRef
from keeperhub_scheduler.telemetry import metrics
from keeperhub_scheduler.timing import Timing, cached_timing_of_row

if TYPE_CHECKING:
    from keeperhub_scheduler.dispatcher.stream import RelayStream

log = logging.getLogger(__name__)


@dataclass
class ClaimResult:
    schedules: int = 0
    fired: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    runs: list[RunRef] = field(default_factory=list)  # inserted under our lease, to send

    def add(self, other: ClaimResult) -> None:
        self.schedules += other.schedules
        self.fired += other.fired
        self.skipped.update(other.skipped)
        self.invalid += other.invalid


@dataclass(frozen=True)
class ClaimPlan:
    """How a pass claims: batches growing to ``batch_size``, ``grace`` for lateness, and the
    relay ``lease`` its new runs are inserted under."""

    batch_size: int
    grace: timedelta
    lease: timedelta


async def claim_due(
    store: RunStore, plan: ClaimPlan, stream: RelayStream | None, done: asyncio.Event
) -> ClaimResult:
    """Claim batches until a short one; hand each batch's runs to ``stream`` once committed."""
    # Small batches first, doubling up to the full size: the first runs are on their way after a
    # fifth of the time a full batch takes, and each batch is claimed while the runs of the one
    # before it (half its size) are being sent, so the senders never wait.
    batch_size = max(1, plan.batch_size // 5)
    total = ClaimResult()
    try:
        while True:
            if stream is not None:
                await stream.wait_for_room(batch_size)
            sending = stream is not None and not stream.failed
            began = time.monotonic()
            batch = await once_more_if_disconnected(
                partial(_claim_transaction, store, plan, batch_size, sending)
            )
            metrics.CLAIM_DURATION.observe(time.monotonic() - began)
            total.add(batch)
            if stream is not None and batch.runs:
                await stream.put(batch.runs)
            if batch.schedules < batch_size:
                return total
            batch_size = min(plan.batch_size, 2 * batch_size)
    finally:
        done.set()


async def _claim_transaction(
    store: RunStore, plan: ClaimPlan, batch_size: int, sending: bool
) -> ClaimResult:
    """One batch in a transaction of its own, at the database's clock."""
    async with store.engine.begin() as connection:
        now = await database_now(connection)
        lease_until = now + plan.lease if sending else None
        return await claim_batch(store, connection, now, batch_size, plan.grace, lease_until)


async def claim_batch(
    store: RunStore,
    connection: AsyncConnection,
    now: datetime,
    batch_size: int,
    grace: timedelta,
    lease_until: datetime | None = None,
) -> ClaimResult:
    """Decide up to ``batch_size`` due schedules; with ``lease_until``, return the runs to send.

    Without a lease (a store that cannot tell which runs it inserted, or while the queue is
    failing) the runs are left for the relay's ``lease_pending``.
    """
    if not store.knows_inserted:
        lease_until = None
    rows = await store.lock_due(connection, now, batch_size)
    result = ClaimResult(schedules=len(rows))
    runs = NewRuns(created_at=now, relay_lease_until=lease_until)
    schedule_values: list[dict[str, Any]] = []
    decisions: dict[tuple[Any, ...], Decision] = {}
    for row in rows:
        try:
            timing = cached_timing_of_row(row)  # raises for what KeeperHub wrote wrong
        except InvalidScheduleError as error:
            result.invalid += 1
            log.warning(
                "schedule has an invalid timing; parked until it is changed",
                extra={"schedule_id": row.id, "error": str(error)},
            )
            # next_run_at becomes NULL, so it is not claimed again until it is changed (the
            # trigger then makes it due, and it is read afresh) or an engine that can read it
            # runs (unpark.py).
            await store.park_invalid(connection, row.id, str(error), now)
            continue
        key = timing.plan_key(row.jitter_seconds)
        decision = decided(row, timing, key, now, grace, decisions)
        for fire in decision.fires:
            runs.fire(row.id, row.workflow_id, fire.scheduled_for, fire.due_at)
        if decision.skips:
            await _skips_of(store, connection, row, decision, runs)
        schedule_values.append(_advance(row, key, decision))
        result.fired += len(decision.fires)
        for skip in decision.skips:
            result.skipped[skip.reason] += skip.count or 1
    inserted = await store.insert_runs(connection, runs)
    await store.advance_schedules(connection, schedule_values)
    if lease_until is not None:
        result.runs = runs.pending(inserted)
    return result


def decided(
    row: DueSchedule,
    timing: Timing,
    key: str,
    now: datetime,
    grace: timedelta,
    decisions: dict[tuple[Any, ...], Decision],
) -> Decision:
    """``decide`` for the row, shared with the batch's rows alike in all it depends on.

    Besides ``now`` and ``grace``, a decision depends on the row's timing and planning columns,
    and on its id only through the jitter. At the top of a minute thousands of due schedules
    share a timing and their last decided occurrence, and most have no jitter: their decisions
    are the same, computed once per batch (``decisions``; nothing changes a decision once made).
    """
    cursor = _cursor(row, key, now)
    if row.jitter_seconds:
        return decide(_state(row, timing, cursor), now, grace)
    alike = (
        timing,
        cursor,
        row.misfire_policy,
        row.catchup_window_seconds,
        row.max_catchup_runs,
        row.paused_at,
        row.paused_until,
        bool(row.workflow_enabled),
    )
    decision = decisions.get(alike)
    if decision is None:
        decision = decisions[alike] = decide(_state(row, timing, cursor), now, grace)
    return decision


def _cursor(row: DueSchedule, key: str, now: datetime) -> datetime:
    """The instant the row's occurrences are decided through."""
    cursor = row.decided_through
    if row.plan_key is not None and row.plan_key != key:
        # Timing changed under a stale key by a writer that bypassed the trigger: only
        # occurrences after the change count. A NULL key needs nothing here: the trigger (or the
        # migration) that cleared it has set decided_through already, to the change instant for
        # a new timing, and left it alone when only next_run_at moved, which loses nothing.
        changed = row.updated_at or now
        cursor = max(cursor, changed) if cursor else changed
    return cursor or now


def _state(row: DueSchedule, timing: Timing, cursor: datetime) -> ScheduleState:
    return ScheduleState(
        schedule_id=row.id,
        timing=timing,
        decided_through=cursor,
        misfire_policy=row.misfire_policy,
        catchup_window=timedelta(seconds=row.catchup_window_seconds),
        max_catchup_runs=row.max_catchup_runs,
        jitter_seconds=row.jitter_seconds,
        paused_at=row.paused_at,
        paused_until=row.paused_until,
        workflow_enabled=bool(row.workflow_enabled),
    )


async def _skips_of(
    store: RunStore,
    connection: AsyncConnection,
    row: DueSchedule,
    decision: Decision,
    runs: NewRuns,
) -> None:
    for index, skip in enumerate(decision.skips):
        first_decided = index == 0 and not (
            decision.fires and decision.fires[0].scheduled_for < skip.first
        )
        # A schedule paused for a week, or whose workflow is disabled, keeps one history row
        # that says so (grown by each pass), instead of one row per occurrence.
        if (
            first_decided
            and row.decided_through is not None
            and skip.count is not None
            and await store.extend_skip_range(
                connection,
                row.id,
                row.decided_through,
                reason=skip.reason,
                last=skip.last,
                count=skip.count,
            )
        ):
            continue
        runs.skip(
            row.id,
            row.workflow_id,
            first=skip.first,
            last=skip.last,
            count=skip.count,
            reason=skip.reason,
            due_at=skip.due_at,
        )


def _advance(row: DueSchedule, key: str, decision: Decision) -> dict[str, Any]:
    last_fired = decision.fires[-1].scheduled_for if decision.fires else None
    return {
        "b_id": row.id,
        "b_next_run_at": decision.next_run_at,
        "b_decided_through": decision.decided_through or row.decided_through,
        "b_plan_key": key,
        "b_last_fired": last_fired,
        "b_pause_ended": decision.pause_ended,
    }
