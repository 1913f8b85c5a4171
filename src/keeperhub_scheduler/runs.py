"""The run vocabulary: what a run is, the states it goes through, and the words stored for it.

A run is one occurrence of a schedule (or one a user asked for) on its way to KeeperHub's execute
call. Its ``status`` moves along one path, and every change is one statement of the run store
(``db.store.RunStore``, one method each, named here beside the change it makes)::

    created ─► pending ─► enqueued ─► running ─► succeeded | failed | dead
       │          ▲                      ▲   │
       │          │                      │   └─► retrying ─► (claimed again when due)
       │          └── sweep_stale: enqueued, running or retrying whose message was lost
       └─► skipped (decided not to run; also a claimed run that may not run now)

* created: by the dispatcher's claim (``insert_runs``: pending or skipped), by a trigger or a
  backfill (``add_requested_runs``: pending), by a message in the original dispatcher's format
  (``run_for_occurrence``: enqueued).
* pending -> enqueued: the relay sent it (``lease_pending``, then ``mark_enqueued`` or
  ``release``).
* -> running: an executor's ``claim`` takes it for one attempt under a lease (``extend_lease``
  keeps it); from pending, enqueued, retrying when due, or running under a lapsed lease.
* running -> an outcome: ``record`` (and ``claim`` itself, to skipped, when the schedule or the
  workflow was switched off, or the overlap policy says so).

The enums are ``str`` enums: a member binds and compares as the text stored in PostgreSQL and
SQLite, so rows read back as plain strings compare equal to them. The CHECK constraints of
``db.tables`` are generated from them (``sql_in``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "pending"  # decided, not yet handed to the transport (the outbox)
    ENQUEUED = "enqueued"  # handed to the transport
    RUNNING = "running"  # claimed by an executor under a lease
    RETRYING = "retrying"  # a retryable failure; another attempt is due at next_attempt_at
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a final failure (4xx), not retried
    SKIPPED = "skipped"  # decided not to run; skip_reason says why
    DEAD = "dead"  # retries exhausted; the message went to the dead-letter queue


FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.DEAD)
# Between the queue and a final status (the partial index ix_schedule_runs_active).
ACTIVE = (RunStatus.ENQUEUED, RunStatus.RUNNING, RunStatus.RETRYING)
# The outcomes of an attempt that end the run (``retrying`` does not).
FINAL_OUTCOMES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.DEAD)
FAILURES = (RunStatus.FAILED, RunStatus.DEAD)


class RunKind(StrEnum):
    SCHEDULE = "schedule"  # decided by the dispatcher
    MANUAL = "manual"  # run now (trigger)
    BACKFILL = "backfill"


class SkipReason(StrEnum):
    """Why an occurrence or a run did not execute (``skip_reason``)."""

    COALESCED = "coalesced"  # fire_once: an older missed occurrence
    CATCHUP_LIMIT = "catchup_limit"  # fire_all: beyond max_catchup_runs
    MISFIRED = "misfired"  # skip: missed
    MISSED_WINDOW = "missed_window"  # later than the catch-up window
    PAUSED = "paused"
    WORKFLOW_DISABLED = "workflow_disabled"
    SCHEDULE_DISABLED = "schedule_disabled"
    OVERLAP = "overlap"  # overlap_policy skip: another run of the schedule was in flight


class MisfirePolicy(StrEnum):
    FIRE_ONCE = "fire_once"
    FIRE_ALL = "fire_all"
    SKIP = "skip"


class OverlapPolicy(StrEnum):
    ALLOW = "allow"
    SKIP = "skip"


class LastStatus(StrEnum):
    """KeeperHub's words for a schedule's ``last_status``."""

    SUCCESS = "success"
    ERROR = "error"


# A retry's message may come back a moment before the attempt time stored with it.
RETRY_TOLERANCE = timedelta(seconds=2)


def sql_in(column: str, values: Iterable[StrEnum]) -> str:
    """``column IN ('a', 'b')``: the text of a CHECK constraint or a partial index."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRef:
    """One run, as it travels from the dispatcher's claim to KeeperHub's execute call: in the
    queue message, in the executor's claim, and in the call (its id is the ``executionId``)."""

    run_id: str
    workflow_id: str
    schedule_id: str
    scheduled_for: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedRun(RunRef):
    """A run an executor holds for one attempt."""

    kind: str
    attempt: int  # this attempt's number, 1 for the first


def new_run_id() -> str:
    """A UUIDv7 string: random, but ordered by creation time, so index inserts stay local.

    It is also the ``executionId`` and ``Idempotency-Key`` KeeperHub receives for the run.
    """
    milliseconds = (time.time_ns() // 1_000_000) & 0xFFFF_FFFF_FFFF  # 48 bits
    random = bytearray(os.urandom(10))
    random[0] = 0x70 | (random[0] & 0x0F)  # version 7
    random[2] = 0x80 | (random[2] & 0x3F)  # RFC 4122 variant
    # Formatted by hand from bytes: building a uuid.UUID only to print it, or shifting one
    # 128-bit integer, cost more than the rest of a fire.
    digits = milliseconds.to_bytes(6, "big").hex() + random.hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
