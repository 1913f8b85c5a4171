"""The timeline's data: lanes, one mark per occurrence coloured by verdict, skip ranges with their
reason, planned fires ahead of now, filters and pages of lanes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler import management
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.management.models import PauseRequest
from keeperhub_scheduler.ui.timeline import LANES_PER_PAGE, TimelineQuery, read_timeline
from tests.management.world import add_runs, schedule_columns


async def now_of(engine: AsyncEngine) -> datetime:
    async with engine.connect() as connection:
        return await database_now(connection)


def ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


async def test_a_lane_has_a_mark_per_run_a_bar_per_skip_range_and_planned_fires(
    any_engine: AsyncEngine,
) -> None:
    from tests.ui.world import new_schedule

    schedule_id = await new_schedule(any_engine, name="every five minutes",
                                     cron_expression="*/5 * * * *")  # fmt: skip
    workflow_id = (await schedule_columns(any_engine, schedule_id))["workflow_id"]
    now = await now_of(any_engine)
    at = [now - timedelta(minutes=m) for m in (55, 45, 35, 25)]
    await add_runs(any_engine, schedule_id, workflow_id, [at[0]], http_status=200, attempts=1)
    await add_runs(any_engine, schedule_id, workflow_id, [at[1]], status="failed", http_status=400)
    await add_runs(any_engine, schedule_id, workflow_id, [at[2]], status="retrying")
    await add_runs(
        any_engine, schedule_id, workflow_id, [now - timedelta(hours=2)], status="skipped",
        skip_reason="paused", scheduled_until=at[3], occurrences=10, finished_at=None,
    )  # fmt: skip
    await add_runs(any_engine, schedule_id, workflow_id, [now - timedelta(hours=3)])  # outside

    data = await read_timeline(any_engine, TimelineQuery(window="1h"))

    [lane] = data["lanes"]
    assert (lane["id"], lane["timezone"]) == (schedule_id, "UTC")
    assert lane["name"] == "every five minutes"
    marks = {mark["t"]: mark for mark in lane["marks"]}
    assert set(marks) == {ms(at[0]), ms(at[1]), ms(at[2])}
    assert marks[ms(at[0])]["verdict"] == "succeeded"
    assert "HTTP 200" in marks[ms(at[0])]["label"]
    assert marks[ms(at[1])]["verdict"] == "failed"
    assert marks[ms(at[2])]["verdict"] == "pending"
    assert marks[ms(at[2])]["label"].startswith("retrying")
    assert all(mark["run"] for mark in lane["marks"])  # each opens its run
    [skips] = lane["ranges"]
    assert skips["verdict"] == "skipped"
    assert skips["label"].startswith("skipped (paused): 10 occurrences")
    assert skips["t2"] == ms(at[3])
    assert lane["occurrences"] == 13
    planned = [fire["t"] for fire in lane["planned"]]
    assert planned  # 12 minutes ahead (a fifth of the window) hold two or three */5 fires
    assert all(ms(now) < t <= data["end"] for t in planned)
    assert all(t % 300_000 == 0 for t in planned)
    assert data["live"] is True
    assert data["end"] - data["start"] == ms(now + timedelta(minutes=72)) - ms(now)
    assert 0 <= data["start"] - ms(now - timedelta(hours=1)) < 5_000


async def test_many_runs_in_one_column_are_one_mark_of_their_worst_verdict(
    any_engine: AsyncEngine,
) -> None:
    from tests.ui.world import new_schedule

    schedule_id = await new_schedule(any_engine, interval_seconds=1, cron_expression=None)
    workflow_id = (await schedule_columns(any_engine, schedule_id))["workflow_id"]
    now = (await now_of(any_engine)).replace(microsecond=0)
    base = now - timedelta(days=3)
    await add_runs(
        any_engine, schedule_id, workflow_id, [base + timedelta(seconds=s) for s in range(5)]
    )
    await add_runs(
        any_engine, schedule_id, workflow_id, [base + timedelta(seconds=5)], status="dead"
    )

    data = await read_timeline(any_engine, TimelineQuery(window="7d"))
    [mark] = data["lanes"][0]["marks"]
    assert (mark["verdict"], mark["n"], mark["run"]) == ("dead", 6, None)
    assert "6 runs" in mark["label"]
    assert "5 succeeded" in mark["label"]
    assert "1 dead" in mark["label"]


async def test_a_paused_lane_says_so_and_its_planned_fires_will_be_skipped(
    any_engine: AsyncEngine,
) -> None:
    from tests.ui.world import new_schedule

    schedule_id = await new_schedule(any_engine, cron_expression="* * * * *")
    await management.pause_schedule(any_engine, schedule_id, PauseRequest(note="deploy"))
    [lane] = (await read_timeline(any_engine, TimelineQuery(window="1h")))["lanes"]
    assert lane["paused"] is True
    assert lane["paused_note"] == "deploy"
    assert lane["planned"]
    assert all("paused: will be skipped" in fire["label"] for fire in lane["planned"])


async def test_filters_and_pages_of_lanes(any_engine: AsyncEngine) -> None:
    from tests.ui.world import new_schedule

    names: dict[str, Any] = {}
    for n in range(LANES_PER_PAGE + 3):
        zone = "Europe/Berlin" if n % 2 else "UTC"
        names[await new_schedule(any_engine, name=f"job {n:02d}", timezone=zone)] = zone
    paused = next(iter(names))
    await management.pause_schedule(any_engine, paused, PauseRequest())

    first = await read_timeline(any_engine, TimelineQuery())
    second = await read_timeline(any_engine, TimelineQuery(page=2))
    assert (first["total_lanes"], first["pages"]) == (LANES_PER_PAGE + 3, 2)
    assert len(first["lanes"]) == LANES_PER_PAGE
    assert len(second["lanes"]) == 3
    ordered = [lane["name"] for lane in first["lanes"] + second["lanes"]]
    assert ordered == sorted(ordered)

    one = await read_timeline(any_engine, TimelineQuery(workflow="JOB 07"))
    assert [lane["name"] for lane in one["lanes"]] == ["job 07"]
    wildcard = await read_timeline(any_engine, TimelineQuery(workflow="%"))
    assert wildcard["lanes"] == []  # a literal %, not a pattern
    berlin = await read_timeline(any_engine, TimelineQuery(timezone="Europe/Berlin"))
    assert {lane["timezone"] for lane in berlin["lanes"]} == {"Europe/Berlin"}
    assert berlin["total_lanes"] == sum(zone == "Europe/Berlin" for zone in names.values())
    only_paused = await read_timeline(any_engine, TimelineQuery(state="paused"))
    assert [lane["id"] for lane in only_paused["lanes"]] == [paused]
    active = await read_timeline(any_engine, TimelineQuery(state="active"))
    assert active["total_lanes"] == len(names) - 1
