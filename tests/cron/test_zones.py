"""Time zone names, and the engine's view of each zone's clock changes."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest

from keeperhub_scheduler.cron import validate_timezone
from keeperhub_scheduler.cron.zones import UNIX_EPOCH, timeline_for
from keeperhub_scheduler.errors import InvalidScheduleError

from .transitions import zone_changes


@pytest.mark.parametrize(
    "name",
    ["UTC", "Etc/UTC", "Etc/GMT+5", "Europe/Berlin", "America/Argentina/Salta", "US/Eastern"],
)
def test_known_zones(name: str) -> None:
    assert validate_timezone(name) == zoneinfo.ZoneInfo(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Mars/Base", "unknown time zone 'Mars/Base'"),
        ("", "time zone is empty"),
        ("   ", "time zone is empty"),
        ("localtime", "unknown time zone 'localtime'"),  # whatever the machine is set to
        ("posixrules", "unknown time zone 'posixrules'"),
        ("/etc/localtime", "unknown time zone '/etc/localtime'"),
        ("../../etc/passwd", "unknown time zone '../../etc/passwd'"),
        ("America/../Europe/Berlin", "unknown time zone 'America/../Europe/Berlin'"),
        ("America//New_York", "unknown time zone 'America//New_York'"),
        ("posix/Europe/Berlin", "unknown time zone 'posix/Europe/Berlin'"),
        ("right/UTC", "unknown time zone 'right/UTC'"),
        ("america/new_york", "unknown time zone 'america/new_york'"),
        ("Europe/Berlin ", "unknown time zone 'Europe/Berlin '"),
        ("UTC\x00", "unknown time zone 'UTC\\x00'"),
        ("Europe/Berlin\n", "unknown time zone 'Europe/Berlin\\n'"),
        ("x" * 100, f"unknown time zone '{'x' * 64}...'"),
    ],
)
def test_rejected_zones(name: str, message: str) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        validate_timezone(name)
    assert (caught.value.field, str(caught.value)) == ("timezone", message)


@pytest.mark.parametrize("value", [None, 0, b"UTC"])
def test_zone_must_be_a_string(value: object) -> None:
    with pytest.raises(InvalidScheduleError, match="time zone must be a string") as caught:
        validate_timezone(value)  # type: ignore[arg-type]
    assert caught.value.field == "timezone"


def _seconds(moment: datetime) -> int:
    return int((moment - UNIX_EPOCH).total_seconds())


def test_engine_finds_every_offset_change_2000_2037() -> None:
    """The engine probes ZoneInfo every two days and bisects; the stdlib's own parse of the tz
    files must list exactly the same changes, for every zone name."""
    low = _seconds(datetime(2000, 1, 1, tzinfo=UTC))
    high = _seconds(datetime(2038, 1, 1, tzinfo=UTC))
    differences = []
    for name in sorted(zoneinfo.available_timezones() - {"localtime", "posixrules"}):
        expected = [
            (_seconds(c.at), int(c.before.total_seconds()), int(c.after.total_seconds()))
            for c in zone_changes(name)
        ]
        found = [tuple(t) for t in timeline_for(name).transitions(low, high)]
        if found != expected:
            differences.append((name, sorted(set(found) ^ set(expected))[:3]))
    assert differences == []


def test_transition_source_is_sane() -> None:
    """The corpus's transition reader knows the changes everyone knows about."""
    berlin = [c.at for c in zone_changes("Europe/Berlin") if c.at.year == 2025]
    assert berlin == [datetime(2025, 3, 30, 1, tzinfo=UTC), datetime(2025, 10, 26, 1, tzinfo=UTC)]
    apia = [c for c in zone_changes("Pacific/Apia") if c.at.year == 2011][-1]
    assert apia.at == datetime(2011, 12, 30, 10, tzinfo=UTC)
    assert (apia.after - apia.before).days == 1  # the skipped 30 December
    assert zone_changes("UTC") == ()
