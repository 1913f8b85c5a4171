"""The original dispatcher's messages: which occurrence one was sent for, or why it must not run.

The original (TypeScript) dispatcher has no run ids. Each minute it sends, for every schedule
whose ``next_run_at`` fell within the last 60 seconds, ``triggerTime`` = the moment it ran, a few
seconds after the occurrence. So the occurrence a legacy message stands for is the schedule's
latest one at or before its ``triggerTime`` and at most ``MATCH_WINDOW`` before it; mapped there,
it shares that occurrence's run (and its dedup) with our dispatcher, and both running side by
side during a migration call KeeperHub once.

Nothing in a legacy message is trusted but the schedule it names: the schedule row decides the
workflow, the time must be one of the row's occurrences, and a disabled schedule or workflow, or
an occurrence older than the schedule's catch-up window, is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from keeperhub_scheduler.errors import InvalidScheduleError
from keeperhub_scheduler.timing import Timing, cached_timing_of_row

MATCH_WINDOW = timedelta(seconds=60)  # the original's: next_run_at within the last minute


@dataclass(frozen=True)
class Occurrence:
    """The occurrence a legacy message stands for, and the workflow the schedule row names."""

    scheduled_for: datetime
    workflow_id: str


def occurrence_for(
    schedule: Any, workflow_id: str, trigger_time: datetime, now: datetime
) -> Occurrence | str:
    """The occurrence of ``schedule`` (a row of ``RunStore.legacy_schedule``) that a legacy
    message with ``workflow_id`` and ``trigger_time`` was sent for, or the reason it is refused."""
    if workflow_id != schedule.workflow_id:
        return "legacy message names another workflow than its schedule"
    if not schedule.schedule_enabled:
        return "legacy message for a disabled schedule"
    if not schedule.workflow_enabled:
        return "legacy message for a disabled workflow"
    try:
        timing = cached_timing_of_row(schedule)
    except InvalidScheduleError as error:
        return f"legacy message for a schedule that cannot be read: {error}"
    occurrence = latest_at_or_before(timing, trigger_time)
    if occurrence is None:
        return (
            f"legacy message whose triggerTime is no occurrence of its schedule "
            f"(none in the {int(MATCH_WINDOW.total_seconds())} s before it)"
        )
    if occurrence < now - timedelta(seconds=schedule.catchup_window_seconds):
        return "legacy message for an occurrence older than the schedule's catch-up window"
    return Occurrence(occurrence, schedule.workflow_id)


def latest_at_or_before(timing: Timing, instant: datetime) -> datetime | None:
    """The latest occurrence in ``(instant - MATCH_WINDOW, instant]``, or None."""
    latest = None
    for occurrence in timing.search_after(instant - MATCH_WINDOW):
        if occurrence > instant:
            break
        latest = occurrence
    return latest
