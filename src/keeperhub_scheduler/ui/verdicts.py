"""What the status page calls a run: one of five verdicts, from the run's status.

Runs between the decision and their outcome (pending, enqueued, running, retrying) are all
``pending`` here: decided to run, not done yet. The status itself stays in every label.
"""

from __future__ import annotations

VERDICTS = ("succeeded", "failed", "dead", "skipped", "pending")
# The colour of a mark that stands for several runs is its worst verdict's.
SEVERITY = {"dead": 0, "failed": 1, "pending": 2, "skipped": 3, "succeeded": 4}
_BY_STATUS = {
    "succeeded": "succeeded",
    "failed": "failed",
    "dead": "dead",
    "skipped": "skipped",
}


def verdict_of(status: str) -> str:
    return _BY_STATUS.get(status, "pending")


def worst(verdicts: set[str]) -> str:
    return min(verdicts, key=lambda verdict: SEVERITY[verdict])
