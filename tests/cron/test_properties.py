"""Properties of fire times for random expressions, zones and instants, and of random input.

* Fire times are aware UTC datetimes, strictly increasing and strictly after ``after``.
* Each one matches the expression in local wall-clock time, or `dst_note` explains it as the end
  of a gap; a repeated time is noted as a first or second pass.
* They equal the brute-force reference's, for random instants and for instants close to a clock
  change of the zone.
* Random text never raises anything but InvalidScheduleError.
"""

from __future__ import annotations

import contextlib
import os
import zoneinfo
from datetime import UTC, datetime, timedelta
from itertools import islice

from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from keeperhub_scheduler.cron import (
    describe,
    dst_note,
    iter_fire_times,
    next_fire_times,
    validate_cron_expression,
    validate_timezone,
)
from keeperhub_scheduler.errors import InvalidScheduleError

from .reference import parse_reference, reference_next, wall_matches
from .transitions import zone_changes

ZONES = sorted(zoneinfo.available_timezones() - {"localtime", "posixrules"})
ZONES_WITH_CHANGES = [name for name in ZONES if zone_changes(name)]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
GAP_END = "not exist (clocks jump forward); fired when the gap ended"
MACROS = [
    "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually", "@minutely",
    "@secondly", "@weekdays", "@weekends",
]  # fmt: skip
SEEDS = st.sampled_from(["", "sch_1", "wf_nightly", "sch_01HZX3"])

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
)
# CRON_PROPERTY_SCALE=20 runs twenty times the examples, for a deeper search than CI's.
SCALE = int(os.environ.get("CRON_PROPERTY_SCALE", "1"))


def examples(count: int) -> settings:
    # No "explain" phase: on Python 3.11 it traces every line, which makes slow examples crawl.
    return settings(
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        max_examples=count * SCALE,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    )


@st.composite
def values(draw: st.DrawFn, low: int, high: int, names: list[str] | None = None) -> tuple[int, str]:
    """A number of the field, written as a number or (sometimes) as a name in any case."""
    number = draw(st.integers(low, high))
    if names and number - low < len(names) and draw(st.booleans()):
        name = names[number - low]
        return number, draw(st.sampled_from([name, name.lower(), name.capitalize()]))
    return number, str(number)


@st.composite
def items(draw: st.DrawFn, low: int, high: int, names: list[str] | None = None) -> str:
    span = high - low + 1
    # Any step of 1 or more; wider than the field now and then.
    step = draw(st.one_of(st.integers(1, span), st.integers(span + 1, 3 * span)))
    kind = draw(
        st.sampled_from(["*", "?", "*/n", "a", "a", "a-b", "a-b/n", "a/n", "H", "H/n", "H(a-b)/n"])
    )
    if kind in ("*", "?", "H"):
        return kind
    if kind in ("*/n", "H/n"):
        return f"{kind[0]}/{step}"
    (a, a_text), (b, b_text) = draw(values(low, high, names)), draw(values(low, high, names))
    if a > b:
        (a, a_text), (b, b_text) = (b, b_text), (a, a_text)
    if kind == "H(a-b)/n":
        return f"H({a}-{b})/{step}"
    return {"a": a_text, "a-b": f"{a_text}-{b_text}", "a-b/n": f"{a_text}-{b_text}/{step}"}.get(
        kind, f"{a_text}/{step}"
    )


def fields(
    low: int, high: int, names: list[str] | None = None, extra: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[str]:
    item = items(low, high, names) if extra is None else st.one_of(items(low, high, names), extra)
    return st.lists(item, min_size=1, max_size=3).map(",".join)


weekday_numbers = st.integers(0, 7)
day_of_week_extra = st.one_of(
    st.builds(
        "{}#{}".format, st.one_of(weekday_numbers, st.sampled_from("*?H")), st.integers(1, 5)
    ),
    st.builds("{}L".format, st.one_of(weekday_numbers, st.just("H"))),
)


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, str]:
    """An expression and the seed its H is picked with (the schedule's id)."""
    seed = draw(SEEDS)
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(MACROS)), seed
    parts = [
        draw(fields(0, 59)),
        draw(fields(0, 23)),
        draw(fields(1, 31, extra=st.just("L"))),
        draw(fields(1, 12, MONTHS)),
        draw(fields(0, 7, WEEKDAYS, extra=day_of_week_extra)),
    ]
    if draw(st.booleans()):
        parts.insert(0, draw(fields(0, 59)))
    expression = " ".join(parts)
    try:
        validate_cron_expression(expression, seed)
    except InvalidScheduleError as error:
        refused = error.field
    else:
        return expression, seed
    # Only day fields that never match may be refused; everything else here is valid syntax.
    assert refused == "day_of_month", expression
    assume(False)
    return expression, seed


def check_fires(
    expression: str, seed: str, zone: str, after: datetime, fires: list[datetime]
) -> None:
    assert all(f.tzinfo is UTC for f in fires)
    assert all(a < b for a, b in zip([after, *fires], fires, strict=False))
    job, tz = parse_reference(expression, seed), zoneinfo.ZoneInfo(zone)
    for fire in fires:
        note = dst_note(expression, zone, fire, seed)
        wall = fire.astimezone(tz).replace(tzinfo=None)
        if wall_matches(job, wall):
            # An ordinary match, a pass of a repeated time, or a gap's end that also matches.
            assert note is None or "occurs twice" in note or GAP_END in note, note
        else:
            assert note is not None, fire
            assert GAP_END in note, (fire, note)


@examples(200)
@given(expressions(), st.sampled_from(ZONES), instants)
def test_fires_are_increasing_after_and_explained(
    job: tuple[str, str], zone: str, after: datetime
) -> None:
    expression, seed = job
    fires = next_fire_times(expression, zone, after, 5, seed)
    assert len(fires) == 5
    check_fires(expression, seed, zone, after, fires)
    assert list(islice(iter_fire_times(expression, zone, after, seed), 5)) == fires


@examples(150)
@given(expressions(), st.sampled_from(ZONES), instants)
def test_agrees_with_reference(job: tuple[str, str], zone: str, after: datetime) -> None:
    expression, seed = job
    ours = next_fire_times(expression, zone, after, 3, seed)
    assert ours == reference_next(expression, zone, after, 3, seed)


@st.composite
def near_a_change(draw: st.DrawFn) -> tuple[str, datetime]:
    zone = draw(st.sampled_from(ZONES_WITH_CHANGES))
    change = draw(st.sampled_from(zone_changes(zone)))
    seconds = draw(st.integers(-3 * 3600, 3 * 3600))
    return zone, change.at + timedelta(seconds=seconds, microseconds=draw(st.integers(0, 999_999)))


@examples(200)
@given(expressions(), near_a_change())
def test_agrees_with_reference_near_clock_changes(
    job: tuple[str, str], place: tuple[str, datetime]
) -> None:
    expression, seed = job
    zone, after = place
    fires = next_fire_times(expression, zone, after, 4, seed)
    check_fires(expression, seed, zone, after, fires)
    assert fires == reference_next(expression, zone, after, 4, seed)


CRONISH = st.text(alphabet="0123456789*/-,#LWH()? \tJANMONFRISUN@dhly١٢\u3000", max_size=40)


@examples(400)
@given(st.one_of(st.text(max_size=300), CRONISH))
def test_random_text_only_raises_invalid_schedule(text: str) -> None:
    calls = [
        lambda: validate_cron_expression(text),
        lambda: describe(text),
        lambda: next_fire_times(text, "UTC", datetime(2024, 1, 1, tzinfo=UTC), 2),
        lambda: validate_timezone(text),
        lambda: next_fire_times("0 0 * * *", text, datetime(2024, 1, 1, tzinfo=UTC), 1),
    ]
    for call in calls:
        with contextlib.suppress(InvalidScheduleError):
            call()
