"""What the status page calls a run: one of five verdicts, from the run's status.

Runs between the decision and their outcome (pending, enqueued, running, retrying) are all
``pending`` here: decided to run, not done yet. The status itself stays in every label.
"""

from __future__ import annotations

from keeperhub_scheduler.runs import RunStatus

SUCCEEDED, FAILED, DEAD, SKIPPED, PENDING = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.DEAD,
    RunStatus.SKIPPED,
    RunStatus.PENDING,
)
VERDICTS: tuple[str, ...] = (SUCCEEDED, FAILED, DEAD, SKIPPED, PENDING)
# The colour of a mark that stands for several runs is its worst verdict's.
SEVERITY: dict[str, int] = {DEAD: 0, FAILED: 1, PENDING: 2, SKIPPED: 3, SUCCEEDED: 4}
_OWN_VERDICT = frozenset((SUCCEEDED, FAILED, DEAD, SKIPPED))


def verdict_of(status: str) -> str:
    return str(status) if status in _OWN_VERDICT else PENDING.value


def worst(verdicts: set[str]) -> str:
    return min(verdicts, key=lambda verdict: SEVERITY[verdict])
