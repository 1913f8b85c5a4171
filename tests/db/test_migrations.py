"""Migrations: an empty database, and one that already holds KeeperHub's own tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from keeperhub_scheduler.db.migrate import current_revision, head_revision, upgrade

KEEPERHUB_SCHEMA = Path(__file__).parent.parent / "fixtures" / "keeperhub_schema.sql"


def columns(url: str, table: str) -> dict[str, tuple[str, str | None]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT column_name, data_type, column_default FROM information_schema.columns"
            " WHERE table_name = %s",
            (table,),
        ).fetchall()
    return {name: (kind, default) for name, kind, default in rows}


def index_names(url: str, table: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)
        ).fetchall()
    return {row[0] for row in rows}


def test_empty_database_gets_every_table(empty_database_url: str) -> None:
    assert upgrade(empty_database_url) == head_revision()

    schedules = columns(empty_database_url, "workflow_schedules")
    for name in ["id", "workflow_id", "cron_expression", "timezone", "enabled", "next_run_at",
                 "last_run_at", "created_at", "updated_at", "last_status", "last_error",
                 "run_count", "misfire_policy", "catchup_window_seconds", "overlap_policy",
                 "jitter_seconds", "start_at", "end_at", "paused_note", "interval_seconds",
                 "anchor_at"]:  # fmt: skip
        assert name in schedules, name
    assert schedules["run_count"] == ("text", "'0'::text")
    assert schedules["next_run_at"][0] == "timestamp with time zone"
    assert {"workflows", "schedule_runs"} <= _tables(empty_database_url)
    assert {"ix_workflow_schedules_due", "idx_workflow_schedules_enabled"} <= index_names(
        empty_database_url, "workflow_schedules"
    )
    assert {"uq_schedule_runs_occurrence", "ix_schedule_runs_pending"} <= index_names(
        empty_database_url, "schedule_runs"
    )


def test_running_twice_is_a_no_op(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    before = columns(empty_database_url, "workflow_schedules")
    assert upgrade(empty_database_url) == head_revision()
    assert columns(empty_database_url, "workflow_schedules") == before


def test_two_migrators_at_once_leave_one_correct_schema(empty_database_url: str) -> None:
    # Separate processes, as two pods would be (alembic's context is per process).
    script = "import sys; from keeperhub_scheduler.db.migrate import upgrade; upgrade(sys.argv[1])"
    migrators = [
        subprocess.Popen([sys.executable, "-c", script, empty_database_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for migrator in migrators:
        _, stderr = migrator.communicate(timeout=120)
        assert migrator.returncode == 0, stderr.decode()
    assert current_revision(empty_database_url) == head_revision()
    assert "schedule_runs" in _tables(empty_database_url)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


@pytest.fixture
def keeperhub_database(empty_database_url: str) -> str:
    """A database as KeeperHub leaves it: its own tables, a user, a workflow and a schedule."""
    with psycopg.connect(empty_database_url, autocommit=True) as connection:
        connection.execute(KEEPERHUB_SCHEMA.read_text())  # type: ignore[arg-type]
        connection.execute("INSERT INTO users (id, email) VALUES ('u1', 'ops@example.com')")
        connection.execute(
            "INSERT INTO workflows (id, name, user_id, nodes, enabled)"
            " VALUES ('wf1', 'Nightly', 'u1', '[]', true)"
        )
        connection.execute(
            "INSERT INTO workflow_schedules (id, workflow_id, cron_expression, timezone,"
            " next_run_at, last_status, run_count)"
            " VALUES ('s1', 'wf1', '0 3 * * *', 'Europe/Berlin',"
            " '2030-01-01T02:00:00Z', 'success', '41')"
        )
    return empty_database_url


def test_keeperhub_tables_keep_their_shape_and_data(keeperhub_database: str) -> None:
    workflows_before = columns(keeperhub_database, "workflows")
    schedules_before = columns(keeperhub_database, "workflow_schedules")

    assert upgrade(keeperhub_database) == head_revision()

    assert columns(keeperhub_database, "workflows") == workflows_before
    schedules_after = columns(keeperhub_database, "workflow_schedules")
    for name, shape in schedules_before.items():
        assert schedules_after[name] == shape, name
    assert "misfire_policy" in schedules_after
    with psycopg.connect(keeperhub_database) as connection:
        row = connection.execute(
            "SELECT workflow_id, cron_expression, timezone, last_status, run_count, plan_key"
            " FROM workflow_schedules WHERE id = 's1'"
        ).fetchone()
    # Their data is untouched; the row is handed to the dispatcher to plan (plan_key is NULL).
    assert row == ("wf1", "0 3 * * *", "Europe/Berlin", "success", "41", None)


def test_keeperhub_statements_still_succeed_after_migration(keeperhub_database: str) -> None:
    upgrade(keeperhub_database)
    with psycopg.connect(keeperhub_database, autocommit=True) as connection:
        # What KeeperHub's app sends (Drizzle, parameters as text): create a workflow + schedule,
        connection.execute(
            "INSERT INTO workflows (id, name, user_id, nodes, edges) VALUES (%s, %s, %s, %s, %s)",
            ("wf2", "Hourly", "u1", "[]", "[]"),
        )
        connection.execute(
            "INSERT INTO workflow_schedules (id, workflow_id, cron_expression, timezone, enabled,"
            " next_run_at, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            ("s2", "wf2", "0 * * * *", "UTC", True, "2030-01-01T01:00:00.000Z",
             "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"),
        )  # fmt: skip
        # change its cron, zone and next run,
        connection.execute(
            "UPDATE workflow_schedules SET cron_expression = %s, timezone = %s, next_run_at = %s,"
            " updated_at = %s WHERE workflow_id = %s",
            ("*/5 * * * *", "America/New_York", "2030-01-01T00:05:00.000Z",
             "2026-01-01T00:01:00.000Z", "wf2"),
        )  # fmt: skip
        # record a run the way its executor did (run_count as a string),
        connection.execute(
            "UPDATE workflow_schedules SET last_run_at = %s, last_status = %s, last_error = %s,"
            " run_count = %s WHERE id = %s",
            ("2026-01-01T00:05:00.000Z", "success", None, "42", "s1"),
        )
        # and delete a workflow: its schedule goes with it.
        connection.execute("DELETE FROM workflows WHERE id = %s", ("wf1",))
        rows = connection.execute(
            "SELECT id, cron_expression, timezone, run_count FROM workflow_schedules"
        ).fetchall()
    assert rows == [("s2", "*/5 * * * *", "America/New_York", "0")]


def test_one_schedule_per_workflow_is_kept(keeperhub_database: str) -> None:
    upgrade(keeperhub_database)
    with (
        psycopg.connect(keeperhub_database, autocommit=True) as connection,
        pytest.raises(psycopg.errors.UniqueViolation),
    ):
        connection.execute(
            "INSERT INTO workflow_schedules (id, workflow_id, cron_expression)"
            " VALUES ('s9', 'wf1', '* * * * *')"
        )


def test_the_run_vocabulary_writes_the_constraints_and_indexes_the_migration_creates(
    empty_database_url: str, pg_admin_url: str
) -> None:
    """``db.tables`` builds its CHECK constraints and partial indexes from ``runs``' enums; the
    migration spells them out. Both must give PostgreSQL the same definitions."""
    from sqlalchemy import create_engine

    from keeperhub_scheduler.db.engine import sqlalchemy_url
    from keeperhub_scheduler.db.tables import metadata
    from tests.support import postgres

    upgrade(empty_database_url)
    with postgres.throwaway_database("tables") as from_tables:
        engine = create_engine(sqlalchemy_url(from_tables, driver="sync"))
        with engine.begin() as connection:
            metadata.create_all(connection)
        engine.dispose()
        assert _definitions(from_tables) == _definitions(empty_database_url)
    assert any("'dead'" in text for text in _definitions(empty_database_url))


def _definitions(url: str) -> set[str]:
    """Every CHECK constraint and partial index on our two tables, as PostgreSQL renders it."""
    with psycopg.connect(url) as connection:
        checks = connection.execute(
            "SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE contype = 'c'"
            " AND conrelid::regclass::text IN ('workflow_schedules', 'schedule_runs')"
        ).fetchall()
        indexes = connection.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexdef LIKE '%WHERE%'"
            " AND tablename IN ('workflow_schedules', 'schedule_runs')"
        ).fetchall()
    return {row[0] for row in checks + indexes}
