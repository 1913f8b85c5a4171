"""Which cron expressions are accepted, what they mean, and what is said about the rest."""

from __future__ import annotations

import pytest

from keeperhub_scheduler.cron import CronExpression, parse_cron, validate_cron_expression
from keeperhub_scheduler.errors import InvalidScheduleError

ALL_DAYS = frozenset(range(7))


def weekdays(expr: CronExpression) -> set[int]:
    return {w for w in range(7) if expr.day_of_week_bits >> w & 1}


def days(expr: CronExpression) -> set[int]:
    return {d for d in range(1, 32) if expr.day_of_month_bits >> (d - 1) & 1}


# (expression, attribute, expected value)
ACCEPTED = [
    # plain values, ranges, lists, steps
    ("0 9 * * 1-5", "minutes", (0,)),
    ("0 9 * * 1-5", "hours", (9,)),
    ("0,30 8-10 * * *", "minutes", (0, 30)),
    ("0,30 8-10 * * *", "hours", (8, 9, 10)),
    ("*/15 * * * *", "minutes", (0, 15, 30, 45)),
    ("10-20/5 * * * *", "minutes", (10, 15, 20)),
    ("5/20 * * * *", "minutes", (5, 25, 45)),  # a/n: a to the field's maximum
    ("5-5/10 * * * *", "minutes", (5,)),  # a-a/n is the single value a, not a/n
    ("*/60 * * * *", "minutes", (0,)),
    ("0 */6 * * *", "hours", (0, 6, 12, 18)),
    ("007 * * * *", "minutes", (7,)),
    # names, any case
    ("0 0 1 jan,Mar-MAY *", "months", (1, 3, 4, 5)),
    ("0 0 1 JAN-DEC/3 *", "months", (1, 4, 7, 10)),
    # seconds
    ("*/15 * * * * *", "seconds", (0, 15, 30, 45)),
    ("*/15 * * * * *", "has_seconds", True),
    ("0 9 * * *", "seconds", (0,)),
    ("0 9 * * *", "has_seconds", False),
    # L, n#k, nL
    ("0 0 L * *", "last_day_of_month", True),
    ("0 0 1,L * *", "last_day_of_month", True),
    ("0 0 * * 5#5", "nth_weekdays", ((5, 5),)),
    ("0 0 * * fri#1,MON#3", "nth_weekdays", ((1, 3), (5, 1))),
    ("0 0 * * 0#1", "nth_weekdays", ((0, 1),)),  # the first Sunday
    ("0 0 * * 7#2", "nth_weekdays", ((0, 2),)),  # 7 is Sunday here too
    ("0 0 * * 5L", "last_weekdays", (5,)),
    ("0 0 * * 7L", "last_weekdays", (0,)),
    # the Vixie rule: either day field may match only when neither starts with "*"
    ("0 0 1 * MON", "days_match_either", True),
    ("0 0 1,15 * 1-5", "days_match_either", True),
    ("0 0 * * MON", "days_match_either", False),
    ("0 0 1 * *", "days_match_either", False),
    ("0 0 */2 * MON", "days_match_either", False),
    ("0 0 1 * */2", "days_match_either", False),
    # fixed-time jobs: minute and hour both not starting with "*"
    ("30 2 * * *", "is_fixed_time", True),
    ("0,30 2-4 * * *", "is_fixed_time", True),
    ("5/10 2 * * *", "is_fixed_time", True),
    ("0 30 2 * * *", "is_fixed_time", True),
    ("*/10 30 2 * * *", "is_fixed_time", True),  # the seconds field plays no part
    ("*/5 2 * * *", "is_fixed_time", False),
    ("0 */2 * * *", "is_fixed_time", False),
    ("0 * * * *", "is_fixed_time", False),
    ("*/7 * * * * *", "is_fixed_time", False),
    # macros
    ("@hourly", "fields", ("0", "0", "*", "*", "*", "*")),
    ("@daily", "fields", ("0", "0", "0", "*", "*", "*")),
    ("@midnight", "fields", ("0", "0", "0", "*", "*", "*")),
    ("@weekly", "fields", ("0", "0", "0", "*", "*", "0")),
    ("@monthly", "fields", ("0", "0", "0", "1", "*", "*")),
    ("@yearly", "fields", ("0", "0", "0", "1", "1", "*")),
    ("@annually", "fields", ("0", "0", "0", "1", "1", "*")),
    ("@DAILY", "is_fixed_time", True),
    ("@hourly", "is_fixed_time", False),
    # spacing
    ("  0  9\t* *   *  ", "hours", (9,)),
]


@pytest.mark.parametrize(("expression", "attribute", "expected"), ACCEPTED)
def test_accepted(expression: str, attribute: str, expected: object) -> None:
    assert getattr(parse_cron(expression), attribute) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 * * 0", {0}),
        ("0 0 * * 7", {0}),  # 7 is Sunday
        ("0 0 * * 5-7", {5, 6, 0}),
        ("0 0 * * sun,SAT", {0, 6}),
        ("0 0 * * MON-FRI/2", {1, 3, 5}),
        ("0 0 * * 1/2", {1, 3, 5, 0}),  # a/n runs to 7, which is Sunday
        ("0 0 * * *", set(ALL_DAYS)),
        ("0 0 * * 5#5", set()),  # only n#k items: no plain weekday
    ],
)
def test_day_of_week_values(expression: str, expected: set[int]) -> None:
    assert weekdays(parse_cron(expression)) == expected


def test_day_of_month_values() -> None:
    assert days(parse_cron("0 0 1,15,L * *")) == {1, 15}
    assert days(parse_cron("0 0 */10 * *")) == {1, 11, 21, 31}


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 29 2 *",  # fires in leap years
        "0 0 30 2 MON",  # the Vixie rule: Mondays in February
        "0 0 31 1,4 *",  # January has a 31st
        "0 0 L 2 *",
        "0 0 * 2 5#5",  # 29-day Februaries that start on a Friday
        "0 0 */2 2 0#5",  # a Sunday 29 February
    ],
)
def test_days_that_exist_somewhere(expression: str) -> None:
    validate_cron_expression(expression)


FIELDS = (
    "expected 5 (minute hour day-of-month month day-of-week) "
    "or 6 (second minute hour day-of-month month day-of-week)"
)
SYNTAX = "expected a number, a range a-b, a step */n, a-b/n or a/n, or a list of these"

# (expression, field, message)
REJECTED = [
    ("", "cron_expression", "cron expression is empty"),
    ("   \t ", "cron_expression", "cron expression is empty"),
    ("* * * *", "cron_expression", f"cron expression has 4 fields; {FIELDS}"),
    ("* * * * * * *", "cron_expression", f"cron expression has 7 fields; {FIELDS}"),
    ("0#1", "cron_expression", f"cron expression has 1 field; {FIELDS}"),
    ("x" * 300, "cron_expression", "cron expression is too long (300 characters; at most 256)"),
    ("60 * * * *", "minute", "minute 60 is out of range 0-59"),
    ("0 25 * * *", "hour", "hour 25 is out of range 0-23"),
    ("0 0 32 * *", "day_of_month", "day of month 32 is out of range 1-31"),
    ("0 0 0 * *", "day_of_month", "day of month 0 is out of range 1-31"),
    ("0 0 1 13 *", "month", "month 13 is out of range 1-12"),
    ("0 0 * * 8", "day_of_week", "day of week 8 is out of range 0-7"),
    ("60 * * * * *", "second", "second 60 is out of range 0-59"),
    ("99999999999999999999 * * * *", "minute", "minute 99999999999999999999 is out of range 0-59"),
    ("*/0 * * * *", "minute", "minute step 0 is out of range 1-60"),
    ("*/61 * * * *", "minute", "minute step 61 is out of range 1-60"),
    ("0 0-23/25 * * *", "hour", "hour step 25 is out of range 1-24"),
    ("5-1 * * * *", "minute", "minute range 5-1 is reversed (the start is after the end)"),
    (
        "0 0 * * FRI-MON",
        "day_of_week",
        "day of week range FRI-MON is reversed (the start is after the end)",
    ),
    ("0 0 30 2 *", "day_of_month", "day of month 30 never occurs in February"),
    ("0 0 30,31 2 *", "day_of_month", "day of month 30,31 never occurs in February"),
    (
        "0 0 31 4,6,9,11 *",
        "day_of_month",
        "day of month 31 never occurs in April, June, September or November",
    ),
    (
        "0 0 */15 * 1#2",
        "day_of_month",
        "day of month */15 and day of week 1#2 never fall on the same day in any month",
    ),
    ("١ * * * *", "minute", "minute '١' contains '١'; only ASCII is allowed"),
    ("0 ２ * * *", "hour", "hour '２' contains '２'; only ASCII is allowed"),
    ("1--2 * * * *", "minute", f"minute field '1--2' is not valid: {SYNTAX}"),
    ("*/ * * * *", "minute", f"minute field '*/' is not valid: {SYNTAX}"),
    ("*-5 * * * *", "minute", f"minute field '*-5' is not valid: {SYNTAX}"),
    ("0 0 1W * *", "day_of_month", f"day of month field '1W' is not valid: {SYNTAX}"),
    ("0 0 ? * *", "day_of_month", f"day of month field '?' is not valid: {SYNTAX}"),
    (",, * * * *", "minute", "minute field ',,' has an empty list item"),
    ("1, * * * *", "minute", "minute field '1,' has an empty list item"),
    ("L * * * *", "minute", "'L' is not allowed in the minute field"),
    ("0 0 * L *", "month", "'L' is not allowed in the month field"),
    (
        "0 0 L-2 * *",
        "day_of_month",
        "day of month 'L' (the last day) must stand alone, not in a range or step",
    ),
    (
        "0 0 * * L",
        "day_of_week",
        "day of week 'L' must follow a weekday, e.g. 5L for the last Friday",
    ),
    ("0 0 * * 5#6", "day_of_week", "day of week 5#6: occurrence 6 is out of range 1-5"),
    ("0 0 * * 5#0", "day_of_week", "day of week 5#0: occurrence 0 is out of range 1-5"),
    ("0 0 * * 8#1", "day_of_week", "day of week 8 is out of range 0-7"),
    ("0#1 * * * *", "minute", "'#' is only allowed in the day of week field, not in minute"),
    ("0 0 * JANUARY *", "month", "month 'JANUARY' is not a number or a name JAN-DEC"),
    ("0 0 * * FUN", "day_of_week", "day of week 'FUN' is not a number or a name SUN-SAT"),
    ("MON * * * *", "minute", "minute 'MON' is not a number"),
    (
        "@reboot",
        "cron_expression",
        "unknown macro '@reboot'; expected one of @hourly, @daily, @midnight, @weekly,"
        " @monthly, @yearly, @annually",
    ),
    ("@daily 0", "cron_expression", "the macro @daily must stand alone"),
]


@pytest.mark.parametrize(("expression", "field", "message"), REJECTED)
def test_rejected(expression: str, field: str, message: str) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        validate_cron_expression(expression)
    assert (caught.value.field, str(caught.value)) == (field, message)


@pytest.mark.parametrize("value", [None, 5, b"* * * * *", ["* * * * *"]])
def test_not_a_string(value: object) -> None:
    with pytest.raises(InvalidScheduleError, match="cron expression must be a string"):
        validate_cron_expression(value)  # type: ignore[arg-type]


def test_parse_is_cached() -> None:
    assert parse_cron("0 9 * * 1-5") is parse_cron("0 9 * * 1-5")
    assert parse_cron("0 9 * * 1-5").source == "0 9 * * 1-5"
