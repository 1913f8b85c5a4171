"""cron-parser's forms through the API: ``?``, wide steps, and ``H`` picked from the schedule's id.

A schedule with ``H`` fires at the values its own id picks; its description, its next fire times
and a preview given its id all show them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.cron import parse_cron
from keeperhub_scheduler.timing import Timing
from tests.management.world import add_workflow


async def test_h_is_picked_from_each_schedule_s_id(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    for _ in range(3):
        body = {"workflow_id": await add_workflow(engine), "cron_expression": "H H * * *"}
        answer = await client.post("/v1/schedules", json=body)
        assert answer.status_code == 201, answer.text
        schedule = answer.json()
        picked = parse_cron("H H * * *", schedule["id"])
        minute, hour = picked.minutes[0], picked.hours[0]
        assert schedule["description"] == f"At {hour:02d}:{minute:02d}"

        detail = (await client.get(f"/v1/schedules/{schedule['id']}")).json()
        fires = [datetime.fromisoformat(fire["utc"]) for fire in detail["next_fire_times"]]
        assert {(fire.hour, fire.minute) for fire in fires} == {(hour, minute)}
        timing = Timing.of("H H * * *", hash_seed=schedule["id"])
        assert timing.next_n(fires[0] - timedelta(seconds=1), 5) == fires

        preview = await client.post(
            "/v1/preview",
            json={"cron_expression": "H H * * *", "schedule_id": schedule["id"], "count": 2},
        )
        assert preview.status_code == 200, preview.text
        assert preview.json()["description"] == schedule["description"]
        assert [datetime.fromisoformat(f["utc"]) for f in preview.json()["fire_times"]] == (
            timing.next_n(datetime.fromisoformat(preview.json()["fire_times"][0]["utc"])
                          - timedelta(seconds=1), 2)
        )  # fmt: skip


async def test_cron_parser_forms_are_accepted_and_read_plainly(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    for expression, description in [
        ("0 9 ? * MON-FRI", "At 09:00, Monday through Friday"),
        ("*/90 * * * *", "Every hour"),
        ("0 0 */40 * *", "At 00:00, on day 1 of the month"),
    ]:
        body = {"workflow_id": await add_workflow(engine), "cron_expression": expression}
        answer = await client.post("/v1/schedules", json=body)
        assert answer.status_code == 201, answer.text
        assert answer.json()["description"] == description
