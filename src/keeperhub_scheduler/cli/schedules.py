"""``keeperhub-scheduler schedules ...``: create, inspect and control schedules.

Every command takes ``--json`` and ``--api-url``/``--token``; see ``cli.manage`` for the exit
codes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from keeperhub_scheduler.cli import render
from keeperhub_scheduler.cli.common import (
    ApiUrl,
    InstantText,
    JsonFlag,
    Target,
    Token,
    build,
    instant,
    run,
    seconds,
    show,
)
from keeperhub_scheduler.management.models import (
    BackfillRequest,
    PauseRequest,
    PreviewRequest,
    RunQuery,
    ScheduleCreate,
    ScheduleQuery,
    ScheduleUpdate,
    TriggerRequest,
)
from keeperhub_scheduler.runs import MisfirePolicy, OverlapPolicy

schedules_app = typer.Typer(help="Create, inspect and control schedules.", no_args_is_help=True)


@schedules_app.command("list")
def list_command(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's schedule.")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", show_default=False)
    ] = None,
    paused: Annotated[bool | None, typer.Option("--paused/--running", show_default=False)] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1-500).")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Continue after a previous page.")] = None,
    as_json: JsonFlag = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """List schedules, oldest first."""
    query = build(
        ScheduleQuery,
        workflow_id=workflow,
        enabled=enabled,
        paused=paused,
        limit=limit,
        cursor=cursor,
    )
    page = run(Target(api_url, token), lambda b: b.list_schedules(query))
    show(as_json, page, render.schedules_table)


@schedules_app.command("show")
def show_command(
    schedule_id: str, as_json: JsonFlag = False, api_url: ApiUrl = None, token: Token = None
) -> None:
    """A schedule: its timing in words, state, policies, next 5 fire times and last 5 runs."""
    schedule = run(Target(api_url, token), lambda b: b.get_schedule(schedule_id))
    show(as_json, schedule, render.schedule_detail)


@schedules_app.command("create")
def create_command(
    workflow_id: Annotated[str, typer.Argument(help="The workflow to schedule.")],
    cron: Annotated[str | None, typer.Option(help="Cron expression, e.g. '0 9 * * 1-5'.")] = None,
    every: Annotated[
        str | None, typer.Option(help="Interval instead of cron: 90s, 15m, 2h.")
    ] = None,
    anchor_at: InstantText = None,
    timezone: Annotated[str, typer.Option("--timezone", "-z", help="IANA time zone.")] = "UTC",
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    misfire_policy: Annotated[str, typer.Option(help="fire_once, fire_all or skip.")] = (
        MisfirePolicy.FIRE_ONCE.value
    ),
    catchup_window: Annotated[str, typer.Option(help="Late runs older are skipped.")] = "1d",
    max_catchup_runs: Annotated[int, typer.Option(help="For fire_all.")] = 100,
    overlap_policy: Annotated[str, typer.Option(help="allow or skip.")] = OverlapPolicy.ALLOW.value,
    jitter: Annotated[str, typer.Option(help="Spread runs by up to this (<= 1h).")] = "0",
    start_at: InstantText = None,
    end_at: InstantText = None,
    as_json: JsonFlag = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Create the schedule of a workflow: --cron or --every."""
    spec = build(
        ScheduleCreate,
        workflow_id=workflow_id,
        cron_expression=cron,
        interval_seconds=seconds(every, "--every"),
        anchor_at=instant(anchor_at, "--anchor-at"),
        timezone=timezone,
        enabled=not disabled,
        misfire_policy=misfire_policy,
        catchup_window_seconds=seconds(catchup_window, "--catchup-window"),
        max_catchup_runs=max_catchup_runs,
        overlap_policy=overlap_policy,
        jitter_seconds=seconds(jitter, "--jitter"),
        start_at=instant(start_at, "--start-at"),
        end_at=instant(end_at, "--end-at"),
    )
    schedule = run(Target(api_url, token), lambda b: b.create_schedule(spec))
    show(as_json, schedule, render.schedule_detail)


@schedules_app.command("update")
def update_command(
    schedule_id: str,
    cron: Annotated[str | None, typer.Option(help="New cron expression.")] = None,
    every: Annotated[str | None, typer.Option(help="Make it an interval: 90s, 15m.")] = None,
    anchor_at: Annotated[str | None, typer.Option(help="ISO 8601, or 'none'.")] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", "-z")] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable", show_default=False)] = None,
    misfire_policy: Annotated[str | None, typer.Option()] = None,
    catchup_window: Annotated[str | None, typer.Option()] = None,
    max_catchup_runs: Annotated[int | None, typer.Option()] = None,
    overlap_policy: Annotated[str | None, typer.Option()] = None,
    jitter: Annotated[str | None, typer.Option()] = None,
    start_at: Annotated[str | None, typer.Option(help="ISO 8601, or 'none'.")] = None,
    end_at: Annotated[str | None, typer.Option(help="ISO 8601, or 'none'.")] = None,
    as_json: JsonFlag = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Change a schedule; a new timing applies from now on."""
    given: dict[str, Any] = {
        "cron_expression": cron,
        "interval_seconds": seconds(every, "--every"),
        "timezone": timezone,
        "enabled": enabled,
        "misfire_policy": misfire_policy,
        "catchup_window_seconds": seconds(catchup_window, "--catchup-window"),
        "max_catchup_runs": max_catchup_runs,
        "overlap_policy": overlap_policy,
        "jitter_seconds": seconds(jitter, "--jitter"),
    }
    given = {name: value for name, value in given.items() if value is not None}
    for name, value in (("anchor_at", anchor_at), ("start_at", start_at), ("end_at", end_at)):
        if value is not None:
            option = "--" + name.replace("_", "-")
            given[name] = None if value.lower() == "none" else instant(value, option)
    patch = build(ScheduleUpdate, **given)
    schedule = run(Target(api_url, token), lambda b: b.update_schedule(schedule_id, patch))
    show(as_json, schedule, render.schedule_detail)


@schedules_app.command("delete")
def delete_command(
    schedule_id: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: JsonFlag = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Delete a schedule and its run history."""
    if not yes:
        typer.confirm(f"Delete schedule {schedule_id} and its run history?", abort=True)
    run(Target(api_url, token), lambda b: b.delete_schedule(schedule_id))
    show(as_json, {"id": schedule_id, "deleted": True}, lambda _: render.console().print(
        f"Deleted schedule {schedule_id}."
    ))  # fmt: skip


@schedules_app.command("pause")
def pause_command(
    schedule_id: str,
    note: Annotated[str | None, typer.Option(help="Why (shown with the schedule).")] = None,
    until: InstantText = None,
    for_: Annotated[str | None, typer.Option("--for", help="Resume after: 30m, 2h, 1d.")] = None,
    as_json: JsonFlag = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Pause a schedule (occurrences are recorded as skipped), optionally until an instant."""
    end = instant(until, "--until")
    duration = seconds(for_, "--for")
    if duration is not None:
        end = datetime.now(UTC) + timedelta(seconds=duration)
    request = build(PauseRequest, note=note, until=end)
    schedule = run(Target(api_url, token), lambda b: b.pause(schedule_id, request))

    def line(data: dict[str, Any]) -> None:
        ends = f" until {render.when(data['paused_until'])}" if data["paused_until"] else ""
        render.console().print(f"Paused schedule {schedule_id}{ends}.")

    show(as_json, schedule, line)


@schedules_app.command("resume")
def resume_command(
    schedule_id: str, as_json: JsonFlag = False, api_url: ApiUrl = None, token: Token = None
) -> None:
    """End a pause now."""
    schedule = run(Target(api_url, token), lambda b: b.resume(schedule_id))
    show(as_json, schedule, lambda data: render.console().print(
        f"Resumed schedule {schedule_id}; next run {render.when(data['next_run_at'])}."
    ))  # fmt: skip


@schedules_app.command("trigger")
def trigger_command(
    schedule_id: str,
    reason: Annotated[str | None, typer.Option(help="Recorded as the run's note.")] = None,
    ignore_overlap: Annotated[bool, typer.Option(help="Run even if one is in flight.")] = False,
    as_json: JsonFlag = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Run now, outside the schedule (also while it is paused or disabled)."""
    request = build(TriggerRequest, reason=reason, ignore_overlap=ignore_overlap)
    found = run(Target(api_url, token), lambda b: b.trigger(schedule_id, request))
    show(as_json, found, lambda data: render.console().print(
        f"Run {data['id']} queued ({data['kind']}, {data['status']})."
    ))  # fmt: skip


@schedules_app.command("backfill")
def backfill_command(
    schedule_id: str,
    start: Annotated[str, typer.Option(help="First occurrence (ISO 8601, inclusive).")],
    end: Annotated[str, typer.Option(help="Last occurrence (ISO 8601, inclusive).")],
    reason: Annotated[str | None, typer.Option(help="Recorded as each run's note.")] = None,
    ignore_overlap: Annotated[bool, typer.Option(help="Run even if one is in flight.")] = False,
    as_json: JsonFlag = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """A run for each occurrence between --start and --end (at most 1000; none twice).

    The runs obey the overlap policy: with 'skip', runs that find another in flight are skipped;
    --ignore-overlap runs them all.
    """
    request = build(
        BackfillRequest,
        start=instant(start, "--start"),
        end=instant(end, "--end"),
        reason=reason,
        ignore_overlap=ignore_overlap,
    )
    result = run(Target(api_url, token), lambda b: b.backfill(schedule_id, request))
    show(as_json, result, lambda data: render.console().print(
        f"Backfill of {schedule_id}: {data['occurrences']} occurrences, {data['created']} runs"
        f" created, {data['existing']} already had one."
    ))  # fmt: skip


@schedules_app.command("preview")
def preview_command(
    cron: Annotated[str | None, typer.Argument(help="Cron expression (or use --every).")] = None,
    every: Annotated[str | None, typer.Option(help="Interval: 90s, 15m, 2h.")] = None,
    anchor_at: InstantText = None,
    timezone: Annotated[str, typer.Option("--timezone", "-z", help="IANA time zone.")] = "UTC",
    count: Annotated[int, typer.Option("--count", "-n", help="How many (1-100).")] = 10,
    after: InstantText = None,
    as_json: JsonFlag = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """When an expression or interval would fire, before saving it (DST changes marked)."""
    request = build(
        PreviewRequest,
        cron_expression=cron,
        interval_seconds=seconds(every, "--every"),
        anchor_at=instant(anchor_at, "--anchor-at"),
        timezone=timezone,
        count=count,
        after=instant(after, "--after"),
    )
    preview = run(Target(api_url, token), lambda b: b.preview(request))
    show(as_json, preview, render.preview_table)


@schedules_app.command("runs")
def runs_command(
    schedule_id: Annotated[str | None, typer.Argument(help="Omit for every schedule's.")] = None,
    run_id: Annotated[str | None, typer.Option("--id", help="Show this one run.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Repeatable, e.g. failed.")] = None,
    kind: Annotated[str | None, typer.Option(help="schedule, manual or backfill.")] = None,
    workflow: Annotated[str | None, typer.Option()] = None,
    since: InstantText = None,
    until: InstantText = None,
    limit: Annotated[int, typer.Option(help="At most this many (1-500).")] = 20,
    cursor: Annotated[str | None, typer.Option()] = None,
    as_json: JsonFlag = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Run history, newest first (of one schedule, or all); --id shows one run."""
    target = Target(api_url, token)
    if run_id is not None:
        show(as_json, run(target, lambda b: b.get_run(run_id)), render.run_facts)
        return
    query = build(
        RunQuery,
        status=status or None,
        kind=kind,
        workflow_id=workflow,
        since=instant(since, "--since"),
        until=instant(until, "--until"),
        limit=limit,
        cursor=cursor,
    )
    page = run(target, lambda b: b.list_runs(query, schedule_id))
    show(as_json, page, render.runs_page)
