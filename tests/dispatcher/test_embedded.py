"""The embedded mode's dispatcher: SQLite and the database transport, the same claim and relay.

PostgreSQL takes the array statements; SQLite takes the portable ones. Both must decide the same
runs and leave them ``enqueued`` for the executor to read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from keeperhub_scheduler.config import load_settings
from keeperhub_scheduler.db.engine import create_engine, database_now
from keeperhub_scheduler.db.migrate import upgrade
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.dispatcher import Dispatcher
from keeperhub_scheduler.timing import Timing
from keeperhub_scheduler.transport.database import DatabaseTransport

EVERY_MINUTE = Timing.of("* * * * *")


async def test_sqlite_decides_late_occurrences_and_marks_them_enqueued(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade(url)
    engine = create_engine(url)
    async with engine.begin() as connection:
        now = await database_now(connection)
        last_decided = now.replace(second=0, microsecond=0) - timedelta(minutes=3)
        await connection.execute(insert(workflows).values(id="wf", name="wf", enabled=True))
        await connection.execute(
            insert(workflow_schedules).values(
                id="s1",
                workflow_id="wf",
                cron_expression="* * * * *",
                misfire_policy="fire_all",
                decided_through=last_decided,
                next_run_at=last_decided + timedelta(minutes=1),
                plan_key=EVERY_MINUTE.plan_key(0),
            )
        )
    settings = load_settings(database_url=url)
    dispatcher = Dispatcher(engine, DatabaseTransport(engine, None), settings)
    try:
        result = await dispatcher.run_pass()
        again = await dispatcher.run_pass()
        async with engine.connect() as connection:
            runs = (await connection.execute(select(schedule_runs).order_by("scheduled_for"))).all()
            schedule = (await connection.execute(select(workflow_schedules))).one()
    finally:
        await engine.dispose()

    assert result.fired == len(runs) >= 3
    assert again.fired in (0, 1)  # 1 only if a minute began between the passes
    expected = EVERY_MINUTE.next_n(last_decided, len(runs))
    assert [run.scheduled_for for run in runs] == expected
    assert {run.status for run in runs} == {"enqueued"}
    assert schedule.decided_through == expected[-1]
    assert schedule.next_run_at == expected[-1] + timedelta(minutes=1)
    assert schedule.last_run_at == expected[-1]


async def test_sqlite_pause_end_clears_the_pause(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            now = datetime.now(UTC)
            await connection.execute(insert(workflows).values(id="wf", name="wf", enabled=True))
            await connection.execute(
                insert(workflow_schedules).values(
                    id="s1",
                    workflow_id="wf",
                    cron_expression="* * * * *",
                    decided_through=now - timedelta(minutes=2),
                    next_run_at=now - timedelta(minutes=1),
                    plan_key=EVERY_MINUTE.plan_key(0),
                    paused_at=now - timedelta(minutes=5),
                    paused_until=now - timedelta(seconds=1),
                    paused_note="maintenance",
                )
            )
        dispatcher = Dispatcher(
            engine, DatabaseTransport(engine, None), load_settings(database_url=url)
        )
        await dispatcher.run_pass()
        async with engine.connect() as connection:
            schedule = (await connection.execute(select(workflow_schedules))).one()
        assert (schedule.paused_at, schedule.paused_until, schedule.paused_note) == (None,) * 3
    finally:
        await engine.dispose()
