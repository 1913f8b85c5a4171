"""What ``dev`` shows on a terminal: where things are, each execution, a live table of runs."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.tables import schedule_runs
from keeperhub_scheduler.runs import RunStatus

STATUS_STYLE: dict[str, str] = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.DEAD: "bold red",
    RunStatus.RETRYING: "yellow",
    RunStatus.RUNNING: "cyan",
    RunStatus.SKIPPED: "dim",
}
ROWS = 12


class RunsView:
    def __init__(self, engine: AsyncEngine, console: Console, *, live: bool) -> None:
        self.engine = engine
        self.console = console
        self.live = live
        self.executions = 0

    def banner(self, *, database: str, api_url: str, token: str, keeperhub_url: str) -> None:
        lines = [
            f"[bold]database[/]  {database}",
            f"[bold]API[/]       {api_url}/docs   (Bearer token: {token})",
            f"[bold]Status[/]    {api_url}/ui   (log in with the token, or the link below)",
            f"[bold]KeeperHub[/] {keeperhub_url}",
            "[dim]Ctrl-C stops; runs and schedules are kept in the database.[/]",
        ]
        self.console.print(Panel("\n".join(lines), title="keeperhub-scheduler dev", expand=False))

    def login_link(self, url: str, seconds: float) -> None:
        """The one-time login link, unwrapped (a terminal must keep it clickable)."""
        self.console.print(
            f"Open the status page (this link logs in once, within {seconds / 60:.0f} minutes):"
        )
        self.console.print(url, soft_wrap=True, markup=False, highlight=False)

    def on_execution(self, call: dict[str, Any]) -> None:
        """The stand-in received an execute call: say so, one line per execution."""
        self.executions += 1
        trigger = (call.get("input") or {}).get("triggerTime", "?")
        self.console.print(
            f"[green]executed[/] [bold]{call['workflowId']}[/] for {trigger}"
            f" [dim]executionId {call['executionId']}[/]"
        )

    async def run(self, stop: asyncio.Event) -> None:
        if not self.live:
            await stop.wait()
            return
        with Live(console=self.console, refresh_per_second=2, transient=False) as live:
            while not stop.is_set():
                with contextlib.suppress(Exception):  # a busy SQLite must not end the view
                    live.update(await self._render())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _render(self) -> Group:
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(schedule_runs).order_by(schedule_runs.c.scheduled_for.desc()).limit(ROWS)
                )
            ).all()
        table = Table(title=f"recent runs (executions so far: {self.executions})", expand=False)
        for column in ("scheduled for (UTC)", "kind", "status", "attempts", "HTTP", "run id"):
            table.add_column(column)
        now = datetime.now(UTC)
        for row in rows:
            style = STATUS_STYLE.get(row.status, "")
            table.add_row(
                row.scheduled_for.strftime("%H:%M:%S"),
                row.kind,
                f"[{style}]{row.status}[/]" if style else row.status,
                str(row.attempts),
                str(row.http_status or ""),
                row.id,
            )
        table.caption = f"updated {now:%H:%M:%S}"
        return Group(table)
