"""Every management command through Typer's runner, talking to the database (DATABASE_URL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cli.world import database_env, failed, invoke, invoke_json
from tests.management.world import add_runs, run_columns, utc
from tests.support.sqlite import sqlite_url


async def new_schedule(env: dict[str, str | None], workflow_id: str = "wf_report") -> str:
    await invoke_json(env, "workflows", "create", workflow_id, "--name", "Nightly report")
    created = await invoke_json(
        env, "schedules", "create", workflow_id, "--cron", "30 2 * * *", "-z", "Europe/Berlin",
        "--overlap-policy", "skip", "--jitter", "30s", "--catchup-window", "2h",
    )  # fmt: skip
    return str(created["id"])


async def test_create_show_and_list(database_url: str) -> None:
    env = database_env(database_url)
    await invoke_json(env, "workflows", "create", "wf_report", "--name", "Nightly report")
    created = await invoke_json(
        env, "schedules", "create", "wf_report", "--cron", "30 2 * * *", "-z", "Europe/Berlin",
        "--overlap-policy", "skip", "--jitter", "30s", "--catchup-window", "2h",
    )  # fmt: skip
    assert created["description"] == "At 02:30"
    assert (created["overlap_policy"], created["jitter_seconds"]) == ("skip", 30)
    assert created["catchup_window_seconds"] == 7200
    assert len(created["next_fire_times"]) == 5
    shown = await invoke_json(env, "schedules", "show", created["id"])
    assert shown == created

    table = await invoke(env, "schedules", "show", created["id"])
    assert table.exit_code == 0
    for text in ("30 2 * * *", "At 02:30", "Europe/Berlin", "Next fire times", "+01:00"):
        assert text in table.stdout

    await invoke_json(env, "workflows", "create", "wf_poll", "--name", "Poll")
    interval = await invoke_json(env, "schedules", "create", "wf_poll", "--every", "1h30m")
    assert interval["interval_seconds"] == 5400
    assert interval["description"] == "Every 1 hour, 30 minutes"
    listed = await invoke_json(env, "schedules", "list")
    assert [item["id"] for item in listed["items"]] == [created["id"], interval["id"]]
    page = await invoke_json(env, "schedules", "list", "--limit", "1")
    rest = await invoke_json(env, "schedules", "list", "--cursor", page["next_cursor"])
    assert [page["items"][0]["id"], rest["items"][0]["id"]] == [created["id"], interval["id"]]
    only = await invoke_json(env, "schedules", "list", "--workflow", "wf_poll")
    assert [item["id"] for item in only["items"]] == [interval["id"]]
    listing = await invoke(env, "schedules", "list")
    assert created["id"] in listing.stdout
    assert "every 5400s" in listing.stdout


async def test_errors_are_one_line_with_meaningful_exit_codes(database_url: str) -> None:
    env = database_env(database_url)
    schedule_id = await new_schedule(env)
    duplicate = await invoke(env, "schedules", "create", "wf_report", "--every", "60")
    assert "already has a schedule" in failed(duplicate, 4)
    missing = await invoke(env, "schedules", "create", "wf_nope", "--cron", "* * * * *")
    assert failed(missing, 3) == "workflow 'wf_nope' not found"
    await invoke_json(env, "workflows", "create", "wf_other", "--name", "Other")
    bad_cron = await invoke(env, "schedules", "create", "wf_other", "--cron", "60 * * * *")
    assert failed(bad_cron, 2) == "cron_expression: minute 60 is out of range 0-59"
    bad_zone = await invoke(env, "schedules", "create", "wf_other", "--cron", "@daily", "-z", "X/Y")
    assert failed(bad_zone, 2) == "timezone: unknown time zone 'X/Y'"
    bad_every = await invoke(env, "schedules", "create", "wf_other", "--every", "5x")
    assert failed(bad_every, 2) == "--every: '5x' is not a duration like 90s, 15m, 2h or 1d"
    big_jitter = await invoke(
        env, "schedules", "create", "wf_other", "--cron", "@daily", "--jitter", "2h"
    )
    assert failed(big_jitter, 2) == "jitter_seconds: Input should be less than or equal to 3600"
    bad_time = await invoke(env, "schedules", "pause", schedule_id, "--until", "tomorrow")
    assert failed(bad_time, 2) == "--until: 'tomorrow' is not an ISO 8601 instant"
    assert "not found" in failed(await invoke(env, "schedules", "show", "nope"), 3)
    assert "not paused" in failed(await invoke(env, "schedules", "resume", schedule_id), 4)


async def test_update_replans_and_clears(database_url: str) -> None:
    env = database_env(database_url)
    schedule_id = await new_schedule(env)
    updated = await invoke_json(
        env, "schedules", "update", schedule_id, "--cron", "*/10 * * * *", "--end-at",
        "2030-01-01T00:00:00Z", "--misfire-policy", "fire_all",
    )  # fmt: skip
    assert updated["description"] == "Every 10 minutes"
    assert updated["end_at"] == "2030-01-01T00:00:00Z"
    assert updated["misfire_policy"] == "fire_all"
    cleared = await invoke_json(env, "schedules", "update", schedule_id, "--end-at", "none")
    assert cleared["end_at"] is None
    off = await invoke_json(env, "schedules", "update", schedule_id, "--disable")
    assert (off["enabled"], off["next_run_at"]) == (False, None)
    on = await invoke_json(env, "schedules", "update", schedule_id, "--enable")
    assert on["next_run_at"] is not None


async def test_pause_resume_trigger_backfill_and_runs(
    database_url: str, engine: AsyncEngine
) -> None:
    env = database_env(database_url)
    schedule_id = await new_schedule(env)
    paused = await invoke_json(
        env, "schedules", "pause", schedule_id, "--note", "KeeperHub upgrade", "--for", "2h"
    )
    assert paused["paused"] is True
    assert paused["paused_note"] == "KeeperHub upgrade"
    left = utc(paused["paused_until"]) - datetime.now(UTC)
    assert timedelta(hours=1, minutes=59) < left <= timedelta(hours=2)
    text = await invoke(env, "schedules", "pause", schedule_id, "--note", "longer")
    assert text.stdout.strip() == f"Paused schedule {schedule_id}."
    resumed = await invoke(env, "schedules", "resume", schedule_id)
    assert resumed.stdout.startswith(f"Resumed schedule {schedule_id}; next run ")

    run = await invoke_json(env, "schedules", "trigger", schedule_id, "--reason", "rerun")
    assert (run["kind"], run["status"], run["note"]) == ("manual", "pending", "rerun")
    backfill = await invoke_json(
        env, "schedules", "backfill", schedule_id,
        "--start", "2026-01-10T00:00:00Z", "--end", "2026-01-12T23:59:59Z", "--reason", "outage",
    )  # fmt: skip
    assert (backfill["occurrences"], backfill["created"], backfill["existing"]) == (3, 3, 0)
    line = await invoke(
        env, "schedules", "backfill", schedule_id,
        "--start", "2026-01-10T00:00:00Z", "--end", "2026-01-12T23:59:59Z",
    )  # fmt: skip
    assert line.stdout.strip() == (
        f"Backfill of {schedule_id}: 3 occurrences, 0 runs created, 3 already had one."
    )
    runs = await invoke_json(env, "schedules", "runs", schedule_id)
    assert [item["kind"] for item in runs["items"]] == ["manual", *["backfill"] * 3]
    filtered = await invoke_json(env, "schedules", "runs", "--kind", "backfill", "--limit", "2")
    assert len(filtered["items"]) == 2
    assert filtered["next_cursor"]
    rows = await run_columns(engine, schedule_id)
    await add_runs(
        engine, schedule_id, "wf_report", [datetime(2026, 1, 1, tzinfo=UTC)],
        status="failed", http_status=404, error="workflow not found", attempts=1,
    )  # fmt: skip
    failures = await invoke_json(env, "schedules", "runs", "--status", "failed", "--status", "dead")
    assert [item["error"] for item in failures["items"]] == ["workflow not found"]
    one = await invoke_json(env, "schedules", "runs", "--id", run["id"])
    assert one == run
    table = await invoke(env, "schedules", "runs", schedule_id)
    assert "workflow not found" in table.stdout
    assert "note: rerun" in table.stdout
    assert len(rows) == 4
    assert "not found" in failed(await invoke(env, "schedules", "runs", "--id", "nope"), 3)


async def test_preview_status_delete_prune_and_workflows(database_url: str) -> None:
    env = database_env(database_url)
    preview = await invoke_json(
        env, "schedules", "preview", "30 2 * * *", "-z", "Europe/Berlin",
        "--after", "2026-03-28T12:00:00Z", "-n", "2",
    )  # fmt: skip
    assert [fire["local"] for fire in preview["fire_times"]] == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    assert preview["fire_times"][0]["offset_changed"] is True
    assert "clocks jump forward" in preview["fire_times"][0]["dst_note"]
    table = await invoke(env, "schedules", "preview", "--every", "15m", "-n", "3")
    assert "Every 15 minutes" in table.stdout

    schedule_id = await new_schedule(env)
    await invoke_json(env, "schedules", "trigger", schedule_id)
    status = await invoke_json(env, "status")
    assert status["runs_by_status"] == {"pending": 1}
    assert status["schedules"] == {"total": 1, "enabled": 1, "paused": 0}
    report = await invoke(env, "status")
    assert "Oldest pending" in report.stdout
    assert "1 total, 1 enabled, 0 paused" in report.stdout

    pruned = await invoke_json(database_env(database_url, SCHEDULER_RETENTION_DAYS="7"), "prune")
    assert pruned == {"pruned": 0, "retention_days": 7, "max_runs_per_schedule": 1000}

    refused = await invoke(env, "schedules", "delete", schedule_id, input="n\n")
    assert refused.exit_code == 1
    assert (await invoke_json(env, "schedules", "show", schedule_id))["id"] == schedule_id
    deleted = await invoke(env, "schedules", "delete", schedule_id, input="y\n")
    assert deleted.exit_code == 0
    assert "Deleted schedule" in deleted.stdout
    assert failed(await invoke(env, "schedules", "delete", schedule_id, "--yes"), 3)

    off = await invoke_json(env, "workflows", "disable", "wf_report")
    assert off["enabled"] is False
    on = await invoke(env, "workflows", "enable", "wf_report")
    assert on.stdout.strip() == "Enabled workflow wf_report."
    gone = await invoke(env, "workflows", "delete", "wf_report", "--yes")
    assert gone.stdout.strip() == "Deleted workflow wf_report."
    assert failed(await invoke(env, "workflows", "enable", "wf_report"), 3)


async def test_prune_deletes_old_finished_runs(database_url: str, engine: AsyncEngine) -> None:
    env = database_env(database_url)
    schedule_id = await new_schedule(env)
    old = datetime.now(UTC) - timedelta(days=10)
    await add_runs(engine, schedule_id, "wf_report", [old, old + timedelta(hours=1)])
    await add_runs(
        engine, schedule_id, "wf_report", [old + timedelta(hours=2)], status="retrying",
        finished_at=None,
    )  # fmt: skip
    result = await invoke(database_env(database_url, SCHEDULER_RETENTION_DAYS="7"), "prune")
    assert result.exit_code == 0
    assert result.stdout.startswith("Pruned 2 runs")
    assert [run["status"] for run in await run_columns(engine, schedule_id)] == ["retrying"]


async def test_the_database_unreachable_or_not_migrated(tmp_path: object) -> None:
    down = await invoke(database_env("postgresql://nobody@127.0.0.1:9/none"), "schedules", "list")
    assert failed(down, 1).startswith("database error:")
    empty = await invoke(database_env(f"sqlite:///{tmp_path}/empty.db"), "status")
    assert failed(empty, 1).endswith("run: keeperhub-scheduler migrate")
    wrong = await invoke(database_env("mysql://x"), "status")
    assert "DATABASE_URL" in failed(wrong, 2)


async def test_the_api_command_refuses_to_start_without_a_token(database_url: str) -> None:
    result = await invoke(database_env(database_url), "api")
    line = failed(result, 2)
    assert line.startswith(
        "SCHEDULER_API_TOKENS is not set: the API will not start without a token"
    )
    assert "secrets.token_urlsafe(32)" in line  # how to make one


async def test_the_same_commands_on_sqlite(tmp_path: Path) -> None:
    env = database_env(sqlite_url(tmp_path))
    schedule_id = await new_schedule(env)
    await invoke_json(env, "schedules", "pause", schedule_id, "--note", "n")
    assert (await invoke_json(env, "schedules", "list", "--paused"))["items"][0][
        "id"
    ] == schedule_id
    await invoke_json(env, "schedules", "resume", schedule_id)
    run = await invoke_json(env, "schedules", "trigger", schedule_id)
    backfill = await invoke_json(
        env, "schedules", "backfill", schedule_id, "--start", "2026-01-01", "--end", "2026-01-02"
    )
    assert backfill["created"] == 1
    runs = await invoke_json(env, "schedules", "runs", schedule_id)
    assert runs["items"][0]["id"] == run["id"]
    assert (await invoke_json(env, "status"))["runs_by_status"] == {"pending": 2}
    assert json.loads((await invoke(env, "prune", "--json")).stdout)["pruned"] == 0
