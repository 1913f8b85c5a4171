"""Process heartbeats, and an index of dead runs, for the status page.

``scheduler_heartbeats`` holds one row per dispatcher or executor loop, upserted every few seconds
by the process itself (off the per-run path), so the API can show processes it cannot see.
``ix_schedule_runs_dead`` finds the newest dead runs without walking the whole history; only
dead runs are in it, so the executor's writes of every other outcome do not touch it.

Revision ID: 0003
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from keeperhub_scheduler.db.types import UTCDateTime

revision = "0003"
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
    op.create_index(
        "ix_schedule_runs_dead",
        "schedule_runs",
        ["finished_at"],
        postgresql_where=sa.text("status = 'dead'"),
        sqlite_where=sa.text("status = 'dead'"),
    )


def downgrade() -> None:
    op.drop_index("ix_schedule_runs_dead", table_name="schedule_runs")
    op.drop_table("scheduler_heartbeats")
