"""What to do with a schedule's occurrences since the last decision: the misfire policy, exactly.

Pure: no I/O, no clock. The dispatcher calls ``decide`` for each due schedule inside its claim
transaction and writes the result. Every occurrence between the last decided one and ``now`` gets a
verdict: it fires (a run), or it is skipped with a reason (a skip row, which may stand for a range
of consecutive occurrences skipped for the same reason).

Lateness is measured from an occurrence's due instant (the occurrence plus its jitter):

* up to ``grace`` late: on time; it fires.
* more than ``grace`` and up to the catch-up window late: missed; the misfire policy decides:
  ``fire_once`` fires the latest missed occurrence and records the others as ``coalesced``;
  ``fire_all`` fires the latest ``max_catchup_runs`` and records older ones as ``catchup_limit``;
  ``skip`` records them all as ``misfired``.
* more than the catch-up window late: ``missed_window``.

A paused schedule's occurrences (before ``paused_until``) are ``paused``; a disabled workflow's are
``workflow_disabled``; both whatever their lateness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from keeperhub_scheduler.runs import MisfirePolicy, SkipReason
from keeperhub_scheduler.timing import ONE_MICROSECOND, Timing, due_occurrences

# Counting occurrences older than the window stops here (the skip row then says "many").
MAX_COUNTED_OLD = 10_000
# A guard, not a policy: the window already bounds the walk.
MAX_WALK = 1_000_000


@dataclass(slots=True)
class ScheduleState:
    """What ``decide`` needs to know about one schedule."""

    schedule_id: str
    timing: Timing
    decided_through: datetime
    misfire_policy: str = MisfirePolicy.FIRE_ONCE
    catchup_window: timedelta = timedelta(days=1)
    max_catchup_runs: int = 100
    jitter_seconds: int = 0
    paused_at: datetime | None = None
    paused_until: datetime | None = None
    workflow_enabled: bool = True


@dataclass(slots=True)
class Fire:
    scheduled_for: datetime
    due_at: datetime


@dataclass(slots=True)
class Skip:
    """Consecutive occurrences skipped for one reason; ``count`` is None when not counted."""

    first: datetime
    last: datetime
    count: int | None
    reason: str
    due_at: datetime


@dataclass(slots=True)
class Decision:
    fires: list[Fire] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    decided_through: datetime | None = None  # None: nothing new was decided
    next_occurrence: datetime | None = None  # None: the schedule has ended
    next_run_at: datetime | None = None
    pause_ended: bool = False


def decide(state: ScheduleState, now: datetime, grace: timedelta) -> Decision:
    """Decide every occurrence after ``state.decided_through`` that is due at ``now``."""
    return _single_on_time(state, now, grace) or decide_in_full(state, now, grace)


def _single_on_time(state: ScheduleState, now: datetime, grace: timedelta) -> Decision | None:
    """The common case without the general walk: one occurrence due, on time, nothing in its way.

    None when it is not that case. It decides exactly what ``decide_in_full`` decides (a test
    checks the two agree over many generated states); it exists because a dispatcher decides
    this case thousands of times a second.
    """
    if state.paused_at is not None or not state.workflow_enabled:
        return None
    pairs = due_occurrences(
        state.timing, state.schedule_id, state.jitter_seconds, state.decided_through
    )
    first = next(pairs, None)
    if first is None or first[1] > now or now - first[1] > grace:
        return None  # nothing due, or late: the misfire policy has a say
    following = next(pairs, None)
    if following is not None and following[1] <= now:
        return None  # more than one due
    return Decision(
        fires=[Fire(*first)],
        decided_through=first[0],
        next_occurrence=following[0] if following else None,
        next_run_at=following[1] if following else None,
    )


def decide_in_full(state: ScheduleState, now: datetime, grace: timedelta) -> Decision:
    """``decide`` for every case: late, paused, blocked, several due, long outages."""
    decision = Decision(pause_ended=_pause_ended(state, now))
    window = max(state.catchup_window, grace)
    cursor = state.decided_through
    # Occurrences certainly older than the window are recorded without looking at each one.
    certainly_old = now - window - timedelta(seconds=state.jitter_seconds)
    if cursor < certainly_old:
        old, cursor = _old_range(state.timing, cursor, certainly_old)
        decision.decided_through = cursor
        if old is not None:
            decision.skips.append(old)
    due, upcoming = _due_occurrences(state, cursor, now)
    verdicts = _verdicts(state, due, now, grace, window)
    fired_since_skip = False
    for (occurrence, due_at), verdict in zip(due, verdicts, strict=True):
        if verdict is None:
            decision.fires.append(Fire(occurrence, due_at))
            fired_since_skip = True
        else:
            _add_skip(decision.skips, occurrence, due_at, verdict, merge=not fired_since_skip)
            fired_since_skip = False
    if due:
        decision.decided_through = due[-1][0]
    if upcoming is not None:
        decision.next_occurrence, decision.next_run_at = upcoming
    return decision


def _pause_ended(state: ScheduleState, now: datetime) -> bool:
    return state.paused_at is not None and (
        state.paused_until is not None and state.paused_until <= now
    )


def _old_range(timing: Timing, cursor: datetime, before: datetime) -> tuple[Skip | None, datetime]:
    """One ``missed_window`` row for the occurrences in (cursor, before), and the new cursor."""
    first: datetime | None = None
    last = cursor
    count = 0
    for occurrence in timing.occurrences_after(cursor):
        if occurrence >= before:
            break
        first = first or occurrence
        last = occurrence
        count += 1
        if count >= MAX_COUNTED_OLD:
            # Too many to count: the row covers everything up to the window instead.
            last = before - ONE_MICROSECOND
            return Skip(first, last, None, SkipReason.MISSED_WINDOW, first), last
    if first is None:
        return None, before - ONE_MICROSECOND
    return Skip(first, last, count, SkipReason.MISSED_WINDOW, first), last


def _due_occurrences(
    state: ScheduleState, cursor: datetime, now: datetime
) -> tuple[list[tuple[datetime, datetime]], tuple[datetime, datetime] | None]:
    """Occurrences after ``cursor`` due by ``now`` with their due instants, and the next one."""
    due: list[tuple[datetime, datetime]] = []
    pairs = due_occurrences(state.timing, state.schedule_id, state.jitter_seconds, cursor)
    for occurrence, due_at in pairs:
        if due_at > now or len(due) >= MAX_WALK:
            return due, (occurrence, due_at)
        due.append((occurrence, due_at))
    return due, None


def _verdicts(
    state: ScheduleState,
    due: list[tuple[datetime, datetime]],
    now: datetime,
    grace: timedelta,
    window: timedelta,
) -> list[str | None]:
    """None (fire) or a skip reason for each due occurrence, in order."""
    verdicts: list[str | None] = []
    late: list[int] = []  # indexes of missed occurrences the misfire policy decides
    for index, (occurrence, due_at) in enumerate(due):
        lateness = now - due_at
        if (reason := _blocked(state, occurrence)) is not None:
            verdicts.append(reason)
        elif lateness > window:
            verdicts.append(SkipReason.MISSED_WINDOW)
        elif lateness > grace:
            verdicts.append(None)  # placeholder, replaced below
            late.append(index)
        else:
            verdicts.append(None)
    keep, dropped = _MISSED[MisfirePolicy(state.misfire_policy)]
    kept = state.max_catchup_runs if keep is None else keep
    firing = set(late[len(late) - kept :]) if kept else set()
    for index in late:
        verdicts[index] = None if index in firing else dropped
    return verdicts


# What each misfire policy does with missed occurrences: how many of the latest fire (None: up to
# max_catchup_runs), and the reason the others are recorded with.
_MISSED: dict[MisfirePolicy, tuple[int | None, SkipReason]] = {
    MisfirePolicy.FIRE_ONCE: (1, SkipReason.COALESCED),
    MisfirePolicy.FIRE_ALL: (None, SkipReason.CATCHUP_LIMIT),
    MisfirePolicy.SKIP: (0, SkipReason.MISFIRED),
}


def _blocked(state: ScheduleState, occurrence: datetime) -> str | None:
    if state.paused_at is not None and (
        state.paused_until is None or occurrence < state.paused_until
    ):
        return SkipReason.PAUSED
    if not state.workflow_enabled:
        return SkipReason.WORKFLOW_DISABLED
    return None


def _add_skip(
    skips: list[Skip], occurrence: datetime, due_at: datetime, reason: str, *, merge: bool
) -> None:
    """Extend the previous skip row when it is the same reason and nothing fired in between."""
    previous = skips[-1] if skips and merge else None
    if previous is not None and previous.reason == reason and previous.count is not None:
        previous.last = occurrence
        previous.count += 1
        return
    skips.append(Skip(occurrence, occurrence, 1, reason, due_at))
