"""The tables, as SQLAlchemy Core objects: the one place that names columns.

``workflows`` and ``workflow_schedules`` are KeeperHub's own tables (we add columns to the latter);
``schedule_runs`` is ours: one row per decided occurrence, which is at once the outbox the
dispatcher relays from, the dedup key the executor claims on, and the history users read.
The migrations in ``db/migrations`` create exactly this shape; the CHECK constraints and the partial
indexes are written from the run vocabulary (``runs``), so a new status or policy is one line there
(and a migration).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from keeperhub_scheduler.db.types import JsonB, UTCDateTime
from keeperhub_scheduler.runs import (
    ACTIVE,
    MisfirePolicy,
    OverlapPolicy,
    RunKind,
    RunStatus,
    sql_in,
)

metadata = MetaData()
PENDING_ONLY = f"status = '{RunStatus.PENDING}'"

workflows = Table(
    "workflows",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("user_id", Text),  # NOT NULL with a users FK in KeeperHub's own database
    Column("nodes", JsonB, nullable=False, server_default=text("'[]'")),
    Column("edges", JsonB, nullable=False, server_default=text("'[]'")),
    Column("visibility", Text, nullable=False, server_default=text("'private'")),
    Column("enabled", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UTCDateTime, nullable=False, server_default=text("CURRENT_TIMESTAMP")),
    Column("updated_at", UTCDateTime, nullable=False, server_default=text("CURRENT_TIMESTAMP")),
)

workflow_schedules = Table(
    "workflow_schedules",
    metadata,
    # --- the spec's and KeeperHub's columns, with KeeperHub's types ---
    Column("id", Text, primary_key=True),
    Column(
        "workflow_id",
        Text,
        ForeignKey("workflows.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("cron_expression", Text, nullable=False),
    Column("timezone", Text, nullable=False, server_default=text("'UTC'")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("last_run_at", UTCDateTime),
    Column("last_status", Text),
    Column("last_error", Text),
    Column("next_run_at", UTCDateTime),
    Column("run_count", Text, server_default=text("'0'")),  # text, as KeeperHub has it
    Column("created_at", UTCDateTime, nullable=False, server_default=text("CURRENT_TIMESTAMP")),
    Column("updated_at", UTCDateTime, nullable=False, server_default=text("CURRENT_TIMESTAMP")),
    # --- ours: policies ---
    Column(
        "misfire_policy", Text, nullable=False, server_default=text(f"'{MisfirePolicy.FIRE_ONCE}'")
    ),
    Column("catchup_window_seconds", Integer, nullable=False, server_default=text("86400")),
    Column("max_catchup_runs", Integer, nullable=False, server_default=text("100")),
    Column("overlap_policy", Text, nullable=False, server_default=text(f"'{OverlapPolicy.ALLOW}'")),
    Column("jitter_seconds", Integer, nullable=False, server_default=text("0")),
    Column("start_at", UTCDateTime),
    Column("end_at", UTCDateTime),
    Column("interval_seconds", Integer),  # set: an interval schedule; cron_expression says '@every'
    Column("anchor_at", UTCDateTime),
    Column("paused_at", UTCDateTime),  # set while paused
    Column("paused_until", UTCDateTime),  # the pause ends by itself at this instant
    Column("paused_note", Text),
    # --- ours: planning state, written only by the scheduler ---
    Column("decided_through", UTCDateTime),  # occurrences at or before this are decided
    Column("plan_key", Text),  # the timing next_run_at was computed for; NULL = re-plan
    Column("last_status_for", UTCDateTime),  # scheduled_for of the run last_status describes
    CheckConstraint(sql_in("misfire_policy", MisfirePolicy), name="ck_schedules_misfire_policy"),
    CheckConstraint(sql_in("overlap_policy", OverlapPolicy), name="ck_schedules_overlap_policy"),
    CheckConstraint("catchup_window_seconds >= 0", name="ck_schedules_catchup_window"),
    CheckConstraint("max_catchup_runs >= 1", name="ck_schedules_max_catchup_runs"),
    CheckConstraint("jitter_seconds >= 0", name="ck_schedules_jitter"),
    CheckConstraint(
        "interval_seconds IS NULL OR interval_seconds >= 1", name="ck_schedules_interval"
    ),
    Index("idx_workflow_schedules_enabled", "enabled"),
    # The dispatcher's claim: due, enabled schedules in next_run_at order, never a table scan.
    Index(
        "ix_workflow_schedules_due",
        "next_run_at",
        postgresql_where=text("enabled"),
        sqlite_where=text("enabled"),
    ),
)

schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("id", Text, primary_key=True),  # also the executionId and the Idempotency-Key
    Column(
        "schedule_id",
        Text,
        ForeignKey("workflow_schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("workflow_id", Text, nullable=False),
    Column("kind", Text, nullable=False, server_default=text(f"'{RunKind.SCHEDULE}'")),
    Column("scheduled_for", UTCDateTime, nullable=False),  # the occurrence, as the cron says
    Column("scheduled_until", UTCDateTime),  # a skip row may stand for a range of occurrences
    Column("occurrences", Integer),  # how many a skip range stands for; NULL: too many to count
    Column("due_at", UTCDateTime, nullable=False),  # scheduled_for plus the schedule's jitter
    Column("status", Text, nullable=False),
    Column("skip_reason", Text),
    Column("note", Text),
    Column("ignore_overlap", Boolean, nullable=False, server_default=text("false")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("enqueued_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("lease_until", UTCDateTime),
    Column("relay_lease_until", UTCDateTime),
    Column("next_attempt_at", UTCDateTime),
    Column("http_status", Integer),
    Column("error", Text),
    UniqueConstraint("schedule_id", "scheduled_for", name="uq_schedule_runs_occurrence"),
    CheckConstraint(sql_in("status", RunStatus), name="ck_schedule_runs_status"),
    CheckConstraint(sql_in("kind", RunKind), name="ck_schedule_runs_kind"),
    # The relay's outbox: pending runs only, oldest first.
    Index(
        "ix_schedule_runs_pending",
        "due_at",
        postgresql_where=text(PENDING_ONLY),
        sqlite_where=text(PENDING_ONLY),
    ),
    # Runs between the queue and a final status: overlap checks and the stale-run sweep.
    Index(
        "ix_schedule_runs_active",
        "schedule_id",
        "status",
        postgresql_where=text(sql_in("status", ACTIVE)),
        sqlite_where=text(sql_in("status", ACTIVE)),
    ),
    # Extending a skip range row (see dispatcher): found by its end, per schedule.
    Index(
        "ix_schedule_runs_skip_ranges",
        "schedule_id",
        "scheduled_until",
        postgresql_where=text("scheduled_until IS NOT NULL"),
        sqlite_where=text("scheduled_until IS NOT NULL"),
    ),
    # With the verdict's columns beside the key (PostgreSQL), the status page counts a day of
    # runs by an index-only scan instead of a heap fetch per run.
    Index(
        "ix_schedule_runs_scheduled_for",
        "scheduled_for",
        postgresql_include=["status", "skip_reason", "occurrences"],
    ),
    Index("ix_schedule_runs_finished_at", "finished_at"),
    # The runs that need a person, newest first (the status page): few, so a small index.
    Index(
        "ix_schedule_runs_dead",
        "finished_at",
        postgresql_where=text("status = 'dead'"),
        sqlite_where=text("status = 'dead'"),
    ),
)

# One row per running dispatcher or executor loop, written every few seconds by the process
# itself (never per run): what the status page knows of processes it cannot see.
scheduler_heartbeats = Table(
    "scheduler_heartbeats",
    metadata,
    Column("process_id", Text, primary_key=True),  # role@host:pid:nonce
    Column("role", Text, nullable=False),  # dispatcher | executor
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("beat_at", UTCDateTime, nullable=False),  # the loop last turned
    Column("last_work_at", UTCDateTime),  # last claim (dispatcher), last receive (executor)
    Column("max_silence_seconds", Integer, nullable=False),  # silent longer: not alive
    Index("ix_scheduler_heartbeats_beat_at", "beat_at"),
)
