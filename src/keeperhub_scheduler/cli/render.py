"""How the management CLI shows answers: rich tables on a terminal, JSON with ``--json``.

Every function takes the API's JSON (the same from either backend), so the output is the same
whether the CLI talks to the database or to the API.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from keeperhub_scheduler.runs import RunStatus

Json = dict[str, Any]
PIPE_WIDTH = 160

STATUS_STYLE: dict[str, str] = {
    RunStatus.PENDING: "cyan",
    RunStatus.ENQUEUED: "cyan",
    RunStatus.RUNNING: "blue",
    RunStatus.RETRYING: "yellow",
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.DEAD: "bold red",
    RunStatus.SKIPPED: "dim",
}


def console() -> Console:
    # Made per command: it then writes to whatever stdout is now (a terminal, a pipe, a test).
    out = Console(highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out.width = max(out.width, PIPE_WIDTH)  # a pipe or a file has room; do not wrap ids
    return out


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


def when(value: str | None, *, local: bool = False) -> str:
    """An instant for people: ``2026-03-29 01:00:00 UTC``, or with its offset when local."""
    if not value:
        return "-"
    instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    text = instant.strftime("%Y-%m-%d %H:%M:%S")
    if instant.microsecond:
        text += f".{instant.microsecond // 1000:03d}"
    return (
        f"{text} {instant.strftime('%z')[:3]}:{instant.strftime('%z')[3:]}"
        if local
        else f"{text} UTC"
    )


def timing(schedule: Json) -> str:
    if schedule.get("interval_seconds") is not None:
        return f"every {schedule['interval_seconds']}s"
    return str(schedule.get("cron_expression"))


def state(schedule: Json) -> Text:
    if schedule.get("problem"):
        return Text("invalid", style="bold red")
    if not schedule["enabled"]:
        return Text("disabled", style="dim")
    if schedule["paused"]:
        until = schedule.get("paused_until")
        return Text(f"paused until {when(until)}" if until else "paused", style="yellow")
    return Text("enabled", style="green")


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def schedules_table(page: Json) -> None:
    table = Table(title="Schedules", title_justify="left")
    for column in ("ID", "WORKFLOW", "TIMING", "ZONE", "STATE", "NEXT RUN", "LAST"):
        table.add_column(column, overflow="fold")
    for item in page["items"]:
        table.add_row(
            item["id"],
            item["workflow_id"],
            f"{timing(item)}\n[dim]{item.get('description') or item.get('problem')}[/dim]",
            item["timezone"],
            state(item),
            when(item.get("next_run_at")),
            item.get("last_status") or "-",
        )
    out = console()
    out.print(table)
    _next_page(out, page)


def schedule_detail(schedule: Json) -> None:
    out = console()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    described = schedule.get("description") or f"[red]{schedule.get('problem')}[/red]"
    rows: list[tuple[str, Any]] = [
        ("Schedule", schedule["id"]),
        ("Workflow", schedule["workflow_id"]),
        ("Timing", f"{timing(schedule)}  [dim]({described})[/dim]"),
        ("Time zone", schedule["timezone"]),
        ("State", state(schedule)),
    ]
    if schedule.get("paused_note"):
        rows.append(("Pause note", schedule["paused_note"]))
    rows += [
        ("Misfires", f"{schedule['misfire_policy']}, catch-up window "
         f"{schedule['catchup_window_seconds']}s, at most {schedule['max_catchup_runs']} runs"),
        ("Overlap", schedule["overlap_policy"]),
        ("Jitter", f"{schedule['jitter_seconds']}s"),
    ]  # fmt: skip
    if schedule.get("start_at") or schedule.get("end_at"):
        rows.append(
            ("Active", f"{when(schedule.get('start_at'))} to {when(schedule.get('end_at'))}")
        )
    rows += [
        ("Next run", when(schedule.get("next_run_at"))),
        ("Last run", f"{when(schedule.get('last_run_at'))}  {schedule.get('last_status') or ''}"),
        ("Runs", str(schedule["run_count"])),
    ]
    if schedule.get("last_error"):
        rows.append(("Last error", Text(schedule["last_error"], style="red")))
    for name, value in rows:
        facts.add_row(name, value)
    out.print(facts)
    out.print()
    if schedule["next_fire_times"]:
        out.print(fire_table(schedule["next_fire_times"], "Next fire times"))
    else:
        out.print("[bold]Next fire times[/bold]: none (the schedule has ended or cannot be read)")
    out.print()
    if schedule["recent_runs"]:
        out.print(runs_table(schedule["recent_runs"], "Recent runs"))
    else:
        out.print("[bold]Recent runs[/bold]: none yet")


def fire_table(fires: list[Json], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("#", "UTC", "LOCAL", "NOTE"):
        table.add_column(column)
    for index, fire in enumerate(fires, start=1):
        notes = []
        if fire["offset_changed"]:
            notes.append(f"[yellow]UTC offset now {fire['utc_offset']}[/yellow]")
        if fire.get("dst_note"):
            notes.append(fire["dst_note"])
        table.add_row(
            str(index), when(fire["utc"]), when(fire["local"], local=True), "; ".join(notes)
        )
    return table


def runs_table(runs: list[Json], title: str = "Runs") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("RUN", "KIND", "STATUS", "SCHEDULED FOR", "TRIES", "HTTP", "DETAIL"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            run["id"],
            run["kind"],
            status_text(run["status"]),
            when(run["scheduled_for"]),
            str(run["attempts"]),
            str(run["http_status"] or "-"),
            run_detail_text(run),
        )
    return table


def run_detail_text(run: Json) -> str:
    parts = []
    if run.get("skip_reason"):
        many = run.get("occurrences")
        count = f" x{many}" if many and many > 1 else (" (many)" if many is None else "")
        until = f" through {when(run['scheduled_until'])}" if run.get("scheduled_until") else ""
        parts.append(f"{run['skip_reason']}{count}{until}")
    if run.get("error"):
        parts.append(str(run["error"]))
    if run.get("note"):
        parts.append(f"note: {run['note']}")
    return "; ".join(parts)


def runs_page(page: Json) -> None:
    out = console()
    out.print(runs_table(page["items"]))
    _next_page(out, page)


def run_facts(run: Json) -> None:
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    for name in ("id", "schedule_id", "workflow_id", "kind"):
        facts.add_row(name.replace("_", " ").capitalize(), run[name])
    facts.add_row("Status", status_text(run["status"]))
    for name in ("scheduled_for", "scheduled_until", "due_at", "created_at", "enqueued_at",
                 "started_at", "next_attempt_at", "finished_at"):  # fmt: skip
        if run.get(name):
            facts.add_row(name.replace("_", " ").capitalize(), when(run[name]))
    facts.add_row("Attempts", str(run["attempts"]))
    facts.add_row("HTTP status", str(run["http_status"] or "-"))
    detail = run_detail_text(run)
    if detail:
        facts.add_row("Detail", detail)
    console().print(facts)


def preview_table(preview: Json) -> None:
    out = console()
    out.print(f"[bold]{preview['description']}[/bold] ({preview['timezone']})")
    out.print(fire_table(preview["fire_times"], "Fire times"))


def status_report(status: Json) -> None:
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    counts = status["runs_by_status"]
    facts.add_row(
        "Runs",
        Text(", ").join(status_text(f"{name} {counts[name]}") for name in sorted(counts))
        if counts
        else Text("none"),
    )
    oldest = status.get("oldest_pending")
    facts.add_row(
        "Oldest pending",
        f"{oldest['run_id']} due {when(oldest['due_at'])} ({oldest['age_seconds']:.1f}s ago)"
        if oldest
        else "none",
    )
    lag = status["dispatch_lag"]
    facts.add_row(
        "Dispatch lag",
        f"p50 {_seconds(lag['p50_seconds'])}, p99 {_seconds(lag['p99_seconds'])}"
        f" over {lag['samples']} runs in the last {lag['window_seconds'] // 60} minutes",
    )
    failures = status["failures_last_hour"]
    facts.add_row("Failures (1 h)", Text(str(failures), style="red" if failures else "green"))
    schedules = status["schedules"]
    facts.add_row(
        "Schedules",
        f"{schedules['total']} total, {schedules['enabled']} enabled, {schedules['paused']} paused",
    )
    facts.add_row("Queue", _queue(status.get("queue")))
    facts.add_row("Database time", when(status["database_time"]))
    console().print(facts)


def _queue(queue: Json | None) -> str:
    if queue is None:
        return "none (database transport)"
    if queue.get("error"):
        return f"[red]unavailable: {queue['error']}[/red]"
    return (
        f"{queue['visible']} visible, {queue['in_flight']} in flight;"
        f" dead-letter {queue.get('dlq_visible', '-')}"
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _next_page(out: Console, page: Json) -> None:
    if page.get("next_cursor"):
        out.print(f"[dim]more: --cursor {page['next_cursor']}[/dim]")
