"""Process heartbeats, and two indexes of runs, for the status page.

``scheduler_heartbeats`` holds one row per dispatcher or executor loop, upserted every few seconds
by the process itself (off the per-run path), so the API can show processes it cannot see.
``ix_schedule_runs_dead`` finds the newest dead runs without walking the whole history; only
dead runs are in it, so the executor's writes of every other outcome do not touch it.
On PostgreSQL, ``ix_schedule_runs_scheduled_for`` is rebuilt with the verdict's columns
(status, skip_reason, occurrences) included beside its key, so a day of runs is counted by an
index-only scan (about 45% less time at 1,000,000 runs, measured by bench/ui.py). The rebuild
takes a write lock on schedule_runs for as long as it runs: about 1.5 s per million runs here.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from keeperhub_scheduler.db.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_heartbeats",
        sa.Column("process_id", sa.Text, primary_key=True),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("beat_at", UTCDateTime, nullable=False),
        sa.Column("last_work_at", UTCDateTime),
        sa.Column("max_silence_seconds", sa.Integer, nullable=False),
    )
    op.create_index("ix_scheduler_heartbeats_beat_at", "scheduler_heartbeats", ["beat_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_schedule_runs_scheduled_for", table_name="schedule_runs")
        op.create_index(
            "ix_schedule_runs_scheduled_for",
            "schedule_runs",
            ["scheduled_for"],
            postgresql_include=["status", "skip_reason", "occurrences"],
        )
    op.create_index(
        "ix_schedule_runs_dead",
        "schedule_runs",
        ["finished_at"],
        postgresql_where=sa.text("status = 'dead'"),
        sqlite_where=sa.text("status = 'dead'"),
    )


def downgrade() -> None:
    op.drop_index("ix_schedule_runs_dead", table_name="schedule_runs")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_schedule_runs_scheduled_for", table_name="schedule_runs")
        op.create_index("ix_schedule_runs_scheduled_for", "schedule_runs", ["scheduled_for"])
    op.drop_table("scheduler_heartbeats")
