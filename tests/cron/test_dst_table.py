"""Clock changes, worked by hand: the table in DST_TABLE.md (docs/schedules.md) is this test's data.

Fixed-time jobs (minute and hour not starting with "*") fire once at the end of a gap for a time
the gap skipped, and only on the first pass of a repeated time; other jobs fire by elapsed time:
not at all for a skipped time, on both passes of a repeated one. Every expected instant below was
worked out from the zone's published rules, not taken from the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from keeperhub_scheduler.cron import dst_note, next_fire_times

from .reference import reference_next

GAP = "{} does not exist (clocks jump forward); fired when the gap ended"
FIRST = "{} occurs twice (clocks go back); first pass"
SECOND = "{} occurs twice (clocks go back); second pass"


@dataclass(frozen=True)
class Row:
    zone: str
    change: str  # the clock change, in local time
    job: str
    after: str  # UTC
    fires: tuple[tuple[str, str | None], ...]  # (UTC instant, dst_note)
    rule: str = ""  # what the row shows, for the table


ROWS = (
    # America/New_York, 2025-03-09: 02:00 EST (-5) -> 03:00 EDT (-4) at 07:00 UTC.
    Row("America/New_York", "2025-03-09 02:00 EST → 03:00 EDT", "30 2 * * *", "2025-03-08T08:00",
        (("2025-03-09T07:00", GAP.format("02:30")), ("2025-03-10T06:30", None)),
        "02:30 is skipped: one fire when the gap ends"),
    Row("America/New_York", "2025-03-09 02:00 EST → 03:00 EDT", "30 * * * *", "2025-03-09T05:00",
        (("2025-03-09T05:30", None), ("2025-03-09T06:30", None), ("2025-03-09T07:30", None),
         ("2025-03-09T08:30", None)),
        "02:30 is skipped: no fire"),
    # America/New_York, 2025-11-02: 02:00 EDT (-4) -> 01:00 EST (-5) at 06:00 UTC.
    Row("America/New_York", "2025-11-02 02:00 EDT → 01:00 EST", "30 1 * * *", "2025-11-01T12:00",
        (("2025-11-02T05:30", FIRST.format("01:30")), ("2025-11-03T06:30", None)),
        "01:30 repeats: first pass only"),
    Row("America/New_York", "2025-11-02 02:00 EDT → 01:00 EST", "30 * * * *", "2025-11-02T04:00",
        (("2025-11-02T04:30", None), ("2025-11-02T05:30", FIRST.format("01:30")),
         ("2025-11-02T06:30", SECOND.format("01:30")), ("2025-11-02T07:30", None)),
        "01:30 repeats: both passes"),
    # Europe/Berlin, 2025-03-30: 02:00 CET (+1) -> 03:00 CEST (+2) at 01:00 UTC.
    Row("Europe/Berlin", "2025-03-30 02:00 CET → 03:00 CEST", "30 2 * * *", "2025-03-29T12:00",
        (("2025-03-30T01:00", GAP.format("02:30")), ("2025-03-31T00:30", None)),
        "02:30 is skipped: one fire when the gap ends"),
    Row("Europe/Berlin", "2025-03-30 02:00 CET → 03:00 CEST", "30 * * * *", "2025-03-29T23:00",
        (("2025-03-29T23:30", None), ("2025-03-30T00:30", None), ("2025-03-30T01:30", None),
         ("2025-03-30T02:30", None)),
        "02:30 is skipped: no fire"),
    # Europe/Berlin, 2025-10-26: 03:00 CEST (+2) -> 02:00 CET (+1) at 01:00 UTC.
    Row("Europe/Berlin", "2025-10-26 03:00 CEST → 02:00 CET", "30 2 * * *", "2025-10-25T12:00",
        (("2025-10-26T00:30", FIRST.format("02:30")), ("2025-10-27T01:30", None)),
        "02:30 repeats: first pass only"),
    Row("Europe/Berlin", "2025-10-26 03:00 CEST → 02:00 CET", "30 * * * *", "2025-10-25T23:00",
        (("2025-10-25T23:30", None), ("2025-10-26T00:30", FIRST.format("02:30")),
         ("2025-10-26T01:30", SECOND.format("02:30")), ("2025-10-26T02:30", None)),
        "02:30 repeats: both passes"),
    # Australia/Lord_Howe, 2025-10-05: 02:00 (+10:30) -> 02:30 (+11) at 15:30 UTC the day before.
    Row("Australia/Lord_Howe", "2025-10-05 02:00 +1030 → 02:30 +11", "15 2 * * *",
        "2025-10-04T00:00",
        (("2025-10-04T15:30", GAP.format("02:15")), ("2025-10-05T15:15", None)),
        "02:15 is skipped: one fire when the gap ends"),
    Row("Australia/Lord_Howe", "2025-10-05 02:00 +1030 → 02:30 +11", "15,45 * * * *",
        "2025-10-04T14:30",
        (("2025-10-04T14:45", None), ("2025-10-04T15:15", None), ("2025-10-04T15:45", None),
         ("2025-10-04T16:15", None)),
        "02:15 is skipped: no fire"),
    # Australia/Lord_Howe, 2025-04-06: 02:00 (+11) -> 01:30 (+10:30) at 15:00 UTC the day before.
    Row("Australia/Lord_Howe", "2025-04-06 02:00 +11 → 01:30 +1030", "45 1 * * *",
        "2025-04-05T00:00",
        (("2025-04-05T14:45", FIRST.format("01:45")), ("2025-04-06T15:15", None)),
        "01:45 repeats: first pass only"),
    Row("Australia/Lord_Howe", "2025-04-06 02:00 +11 → 01:30 +1030", "15,45 * * * *",
        "2025-04-05T14:00",
        (("2025-04-05T14:15", None), ("2025-04-05T14:45", FIRST.format("01:45")),
         ("2025-04-05T15:15", SECOND.format("01:45")), ("2025-04-05T15:45", None)),
        "01:45 repeats: both passes"),
)  # fmt: skip


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def render_table() -> str:
    """DST_TABLE.md, from ROWS."""
    lines = [
        "# Cron fire times around clock changes",
        "",
        "Fixed-time jobs (minute and hour fields both not starting with `*`) fire once when a gap"
        " ends for a time the gap skipped, and only on the first pass of a repeated time. Other"
        " jobs fire by elapsed time: never for a skipped time, on both passes of a repeated one."
        " Generated from `tests/cron/test_dst_table.py`, which checks every row.",
        "",
        "| Zone | Clock change (local) | Job | Rule | After (UTC) | Fires: UTC = local"
        " | dst_note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        minute, hour = row.job.split()[:2]
        fixed = not minute.startswith("*") and not hour.startswith("*")
        kind = "fixed-time" if fixed else "wildcard"
        zone = ZoneInfo(row.zone)
        for i, (fire, note) in enumerate(row.fires):
            shown = utc(fire).astimezone(zone)
            lead = (
                [
                    row.zone,
                    row.change,
                    f"`{row.job}` ({kind})",
                    row.rule,
                    row.after.replace("T", " "),
                ]
                if i == 0
                else ["", "", "", "", ""]
            )
            cells = [
                *lead,
                f"{fire.replace('T', ' ')} = {shown:%Y-%m-%d %H:%M} {shown.tzname()}",
                note or "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row.zone}:{row.job}:{row.after}")
def test_fire_times_around_clock_changes(row: Row) -> None:
    expected = [utc(fire) for fire, _ in row.fires]
    found = next_fire_times(row.job, row.zone, utc(row.after), len(expected))
    assert found == expected
    assert all(f.tzinfo is UTC for f in found)
    assert [dst_note(row.job, row.zone, f) for f in found] == [note for _, note in row.fires]
    assert reference_next(row.job, row.zone, utc(row.after), len(expected)) == expected


def test_markdown_table_is_current() -> None:
    path = Path(__file__).with_name("DST_TABLE.md")
    assert path.read_text(encoding="utf-8") == render_table(), (
        "regenerate: python -c 'from tests.cron.test_dst_table import render_table as r;"
        ' print(r(), end="")\' > tests/cron/DST_TABLE.md'
    )
