"""What one claim batch writes: its fires as columns, its skip rows whole.

A due schedule's occurrence that fires becomes a pending run; the dispatcher decides thousands a
second, so a fire is five appends to five lists (PostgreSQL takes each list as one array), not a
row dict of thirteen keys. Skip rows, rare, stay whole rows. ``rows`` gives every run as a whole
row for a store that writes rows (SQLite's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keeperhub_scheduler.runs import RunKind, RunRef, RunStatus, new_run_id


@dataclass
class NewRuns:
    """The runs one claim batch writes: its fires as columns (the hot path: one pending run per
    due occurrence, written without a dict each) and its skip rows (rare) as whole rows."""

    created_at: datetime
    relay_lease_until: datetime | None  # the fires are leased to this dispatcher until then
    ids: list[str] = field(default_factory=list)
    schedule_ids: list[str] = field(default_factory=list)
    workflow_ids: list[str] = field(default_factory=list)
    scheduled_for: list[datetime] = field(default_factory=list)
    due_at: list[datetime] = field(default_factory=list)
    skips: list[dict[str, Any]] = field(default_factory=list)

    def fire(
        self, schedule_id: str, workflow_id: str, scheduled_for: datetime, due_at: datetime
    ) -> None:
        self.ids.append(new_run_id())
        self.schedule_ids.append(schedule_id)
        self.workflow_ids.append(workflow_id)
        self.scheduled_for.append(scheduled_for)
        self.due_at.append(due_at)

    def skip(
        self,
        schedule_id: str,
        workflow_id: str,
        *,
        first: datetime,
        last: datetime,
        count: int | None,
        reason: str,
        due_at: datetime,
    ) -> None:
        """Occurrences ``first`` to ``last`` (``count`` of them; None: too many to count)."""
        self.skips.append(
            self.row(new_run_id(), schedule_id, workflow_id, first, due_at)
            | {
                "status": RunStatus.SKIPPED,
                "scheduled_until": last,
                "occurrences": count,
                "skip_reason": reason,
                "finished_at": self.created_at,
                "relay_lease_until": None,
            }
        )

    def pending(self, inserted: set[str]) -> list[RunRef]:
        """The fires among ``inserted`` (the others were there already), to send."""
        columns = zip(
            self.ids, self.workflow_ids, self.schedule_ids, self.scheduled_for, strict=True
        )
        return [
            RunRef(
                run_id=run_id, workflow_id=workflow_id, schedule_id=schedule_id, scheduled_for=at
            )
            for run_id, workflow_id, schedule_id, at in columns
            if run_id in inserted
        ]

    def rows(self) -> list[dict[str, Any]]:
        """Every run as a whole row: the fires, then the skips."""
        columns = zip(
            self.ids,
            self.schedule_ids,
            self.workflow_ids,
            self.scheduled_for,
            self.due_at,
            strict=True,
        )
        return [self.row(*fire) for fire in columns] + self.skips

    def row(
        self,
        run_id: str,
        schedule_id: str,
        workflow_id: str,
        scheduled_for: datetime,
        due_at: datetime,
    ) -> dict[str, Any]:
        """A pending fire as a whole row."""
        return {
            "id": run_id,
            "schedule_id": schedule_id,
            "workflow_id": workflow_id,
            "kind": RunKind.SCHEDULE,
            "scheduled_for": scheduled_for,
            "scheduled_until": None,
            "occurrences": 1,
            "due_at": due_at,
            "status": RunStatus.PENDING,
            "skip_reason": None,
            "created_at": self.created_at,
            "finished_at": None,
            "relay_lease_until": self.relay_lease_until,
        }

    def __len__(self) -> int:
        return len(self.ids) + len(self.skips)
