"""Schedules and runs, on an empty database or beside KeeperHub's own tables.

On an empty database this creates a minimal ``workflows``, KeeperHub's ``workflow_schedules`` with
our columns, and ``schedule_runs``. On a database that already holds KeeperHub's tables it leaves
theirs as they are (types, defaults, constraints) and only adds what is missing, so that KeeperHub's
own inserts and updates keep working. Column definitions are written out here, not imported from
``tables.py``, so that this revision means the same thing forever.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from keeperhub_scheduler.db.types import JsonB, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def _keeperhub_schedule_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column(
            "workflow_id",
            sa.Text,
            sa.ForeignKey("workflows.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("cron_expression", sa.Text, nullable=False),
        sa.Column("timezone", sa.Text, nullable=False, server_default=sa.text("'UTC'")),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("last_run_at", UTCDateTime),
        sa.Column("last_status", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("next_run_at", UTCDateTime),
        sa.Column("run_count", sa.Text, server_default=sa.text("'0'")),
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=NOW),
        sa.Column("updated_at", UTCDateTime, nullable=False, server_default=NOW),
    ]


def _our_schedule_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("misfire_policy", sa.Text, nullable=False, server_default="fire_once"),
        sa.Column(
            "catchup_window_seconds", sa.Integer, nullable=False, server_default=sa.text("86400")
        ),
        sa.Column("max_catchup_runs", sa.Integer, nullable=False, server_default=sa.text("100")),
        sa.Column("overlap_policy", sa.Text, nullable=False, server_default="allow"),
        sa.Column("jitter_seconds", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("start_at", UTCDateTime),
        sa.Column("end_at", UTCDateTime),
        sa.Column("interval_seconds", sa.Integer),
        sa.Column("anchor_at", UTCDateTime),
        sa.Column("paused_at", UTCDateTime),
        sa.Column("paused_until", UTCDateTime),
        sa.Column("paused_note", sa.Text),
        sa.Column("decided_through", UTCDateTime),
        sa.Column("plan_key", sa.Text),
        sa.Column("last_status_for", UTCDateTime),
    ]


def _our_schedule_checks() -> list[sa.CheckConstraint]:
    return [
        sa.CheckConstraint(
            "misfire_policy IN ('fire_once', 'fire_all', 'skip')",
            name="ck_schedules_misfire_policy",
        ),
        sa.CheckConstraint(
            "overlap_policy IN ('allow', 'skip')", name="ck_schedules_overlap_policy"
        ),
        sa.CheckConstraint("catchup_window_seconds >= 0", name="ck_schedules_catchup_window"),
        sa.CheckConstraint("max_catchup_runs >= 1", name="ck_schedules_max_catchup_runs"),
        sa.CheckConstraint("jitter_seconds >= 0", name="ck_schedules_jitter"),
        sa.CheckConstraint(
            "interval_seconds IS NULL OR interval_seconds >= 1", name="ck_schedules_interval"
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    tables = set(sa.inspect(bind).get_table_names())
    if "workflows" not in tables:
        _create_minimal_workflows()
    if "workflow_schedules" in tables:
        _extend_keeperhub_schedules(bind)
    else:
        op.create_table(
            "workflow_schedules",
            *_keeperhub_schedule_columns(),
            *_our_schedule_columns(),
            *_our_schedule_checks(),
        )
        op.create_index("idx_workflow_schedules_enabled", "workflow_schedules", ["enabled"])
    op.create_index(
        "ix_workflow_schedules_due",
        "workflow_schedules",
        ["next_run_at"],
        postgresql_where=sa.text("enabled"),
        sqlite_where=sa.text("enabled"),
    )
    _create_schedule_runs()
    if bind.dialect.name == "postgresql":
        # Rows KeeperHub wrote before we existed: decide from now on, and plan them at once.
        op.execute(
            "UPDATE workflow_schedules SET decided_through = now(), next_run_at = now()"
            " WHERE plan_key IS NULL"
        )
        _create_postgres_triggers()


def _create_minimal_workflows() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("user_id", sa.Text),
        sa.Column("nodes", JsonB, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("edges", JsonB, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("visibility", sa.Text, nullable=False, server_default="private"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=NOW),
        sa.Column("updated_at", UTCDateTime, nullable=False, server_default=NOW),
    )


def _extend_keeperhub_schedules(bind: sa.Connection) -> None:
    inspector = sa.inspect(bind)
    present = {column["name"] for column in inspector.get_columns("workflow_schedules")}
    for column in [*_keeperhub_schedule_columns(), *_our_schedule_columns()]:
        if column.name not in present:
            # A key column missing would mean this is not KeeperHub's table: stop, don't guess.
            if column.primary_key or column.name == "workflow_id":
                raise RuntimeError(f"workflow_schedules has no {column.name} column")
            column.foreign_keys.clear()
            column.unique = None
            op.add_column("workflow_schedules", column)
    checks = {check["name"] for check in inspector.get_check_constraints("workflow_schedules")}
    for check in _our_schedule_checks():
        if check.name not in checks:
            op.create_check_constraint(
                str(check.name), "workflow_schedules", sa.text(str(check.sqltext))
            )
    indexes = {index["name"] for index in inspector.get_indexes("workflow_schedules")}
    if "idx_workflow_schedules_enabled" not in indexes:
        op.create_index("idx_workflow_schedules_enabled", "workflow_schedules", ["enabled"])


def _create_schedule_runs() -> None:
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column(
            "schedule_id",
            sa.Text,
            sa.ForeignKey("workflow_schedules.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("workflow_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False, server_default="schedule"),
        sa.Column("scheduled_for", UTCDateTime, nullable=False),
        sa.Column("scheduled_until", UTCDateTime),
        sa.Column("occurrences", sa.Integer),
        sa.Column("due_at", UTCDateTime, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("skip_reason", sa.Text),
        sa.Column("note", sa.Text),
        sa.Column("ignore_overlap", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("enqueued_at", UTCDateTime),
        sa.Column("started_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("lease_until", UTCDateTime),
        sa.Column("relay_lease_until", UTCDateTime),
        sa.Column("next_attempt_at", UTCDateTime),
        sa.Column("http_status", sa.Integer),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("schedule_id", "scheduled_for", name="uq_schedule_runs_occurrence"),
        sa.CheckConstraint(
            "status IN ('pending', 'enqueued', 'running', 'retrying', 'succeeded', 'failed',"
            " 'skipped', 'dead')",
            name="ck_schedule_runs_status",
        ),
        sa.CheckConstraint(
            "kind IN ('schedule', 'manual', 'backfill')", name="ck_schedule_runs_kind"
        ),
    )
    partial = {
        "ix_schedule_runs_pending": (["due_at"], "status = 'pending'"),
        "ix_schedule_runs_active": (
            ["schedule_id", "status"],
            "status IN ('enqueued', 'running', 'retrying')",
        ),
        "ix_schedule_runs_skip_ranges": (
            ["schedule_id", "scheduled_until"],
            "scheduled_until IS NOT NULL",
        ),
    }
    for name, (columns, where) in partial.items():
        op.create_index(
            name,
            "schedule_runs",
            columns,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )
    op.create_index("ix_schedule_runs_scheduled_for", "schedule_runs", ["scheduled_for"])
    op.create_index("ix_schedule_runs_finished_at", "schedule_runs", ["finished_at"])


# Writes that do not come from us (KeeperHub's app, an operator's psql) change a schedule without
# planning it. This trigger notices them and hands the row back to the dispatcher: a changed timing
# or a re-enable means "decide from now on under the new timing" (never fire a next_run_at that was
# computed for the old expression); a moved next_run_at alone means "recompute it". In both cases
# next_run_at becomes now(), so the row is due at once and the dispatcher re-plans it in one tick.
REPLAN_FUNCTION = """
CREATE OR REPLACE FUNCTION keeperhub_scheduler_replan() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('keeperhub_scheduler.writer', true) = 'on' THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'INSERT'
     OR (NEW.cron_expression, NEW.timezone, NEW.interval_seconds, NEW.anchor_at,
         NEW.jitter_seconds, NEW.start_at, NEW.end_at)
        IS DISTINCT FROM
        (OLD.cron_expression, OLD.timezone, OLD.interval_seconds, OLD.anchor_at,
         OLD.jitter_seconds, OLD.start_at, OLD.end_at)
     OR (NEW.enabled AND NOT OLD.enabled) THEN
    NEW.plan_key := NULL;
    NEW.decided_through := now();
    NEW.next_run_at := now();
  ELSIF NEW.next_run_at IS DISTINCT FROM OLD.next_run_at THEN
    NEW.plan_key := NULL;
    NEW.next_run_at := now();
  END IF;
  RETURN NEW;
END $$;
"""

# Long-running dispatchers LISTEN on this channel, so a schedule that became due earlier than they
# planned to wake (a new one, an edit, a re-enable) is picked up at once instead of within a tick.
NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION keeperhub_scheduler_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.enabled AND NEW.next_run_at IS NOT NULL
     AND (TG_OP = 'INSERT' OR OLD.next_run_at IS NULL OR NEW.next_run_at < OLD.next_run_at
          OR NOT OLD.enabled) THEN
    PERFORM pg_notify('keeperhub_scheduler_due', '');
  END IF;
  RETURN NULL;
END $$;
"""


def _create_postgres_triggers() -> None:
    op.execute(REPLAN_FUNCTION)
    op.execute(NOTIFY_FUNCTION)
    op.execute("DROP TRIGGER IF EXISTS keeperhub_scheduler_replan ON workflow_schedules")
    op.execute(
        "CREATE TRIGGER keeperhub_scheduler_replan BEFORE INSERT OR UPDATE ON workflow_schedules"
        " FOR EACH ROW EXECUTE FUNCTION keeperhub_scheduler_replan()"
    )
    op.execute("DROP TRIGGER IF EXISTS keeperhub_scheduler_notify ON workflow_schedules")
    op.execute(
        "CREATE TRIGGER keeperhub_scheduler_notify AFTER INSERT OR UPDATE ON workflow_schedules"
        " FOR EACH ROW EXECUTE FUNCTION keeperhub_scheduler_notify()"
    )
