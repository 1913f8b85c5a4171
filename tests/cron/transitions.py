"""Every UTC-offset change of a zone in a range of years, read from the tz files themselves.

The engine finds transitions by probing ZoneInfo; this corpus helper does not. It reads them from
the standard library's pure-Python zoneinfo implementation (the same files, parsed by other code):
the explicit transition list, then the zone's POSIX rule for years after it. Those attributes are
private, which is acceptable in a test helper and checked by `test_transition_source_is_sane`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import NamedTuple
from zoneinfo import _zoneinfo as pure_zoneinfo


class Change(NamedTuple):
    at: datetime  # aware UTC
    before: timedelta
    after: timedelta

    @property
    def is_gap(self) -> bool:
        return self.after > self.before


def _utc(seconds: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


@cache
def zone_changes(key: str, first_year: int = 2000, last_year: int = 2037) -> tuple[Change, ...]:
    zone = pure_zoneinfo.ZoneInfo.no_cache(key)
    changes: list[Change] = []
    before = zone._tti_before.utcoff if zone._tti_before else None
    for at, info in zip(zone._trans_utc, zone._ttinfos, strict=True):
        if before is not None and info.utcoff != before:
            changes.append(Change(_utc(at), before, info.utcoff))
        before = info.utcoff
    rule = zone._tz_after
    if isinstance(rule, pure_zoneinfo._TZStr):
        last_explicit = _utc(zone._trans_utc[-1]) if zone._trans_utc else None
        start_year = last_explicit.year if last_explicit else first_year
        for year in range(start_year, last_year + 2):
            dst_on, dst_off = rule.transitions(year)
            std, dst = rule.std.utcoff, rule.dst.utcoff
            for at, old, new in (
                (dst_on - std.total_seconds(), std, dst),
                (dst_off - dst.total_seconds(), dst, std),
            ):
                when = _utc(int(at))
                if (last_explicit is None or when > last_explicit) and old != new:
                    changes.append(Change(when, old, new))
    changes.sort()
    return tuple(c for c in changes if first_year <= c.at.year <= last_year)
