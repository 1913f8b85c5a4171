"""describe(): plain English for schedules, as the API's preview shows them."""

from __future__ import annotations

import pytest

from keeperhub_scheduler.cron import describe
from keeperhub_scheduler.errors import InvalidScheduleError


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
        ("0 9 * * mon-fri", "At 09:00, Monday through Friday"),
        ("30 2 * * *", "At 02:30"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("*/5 9-17 * * 1-5", "Every 5 minutes, between 09:00 and 17:59, Monday through Friday"),
        ("5/10 * * * *", "Every 10 minutes, starting at 5 minutes past the hour"),
        ("5-5/10 * * * *", "At 5 minutes past the hour"),  # a-a/n is just a
        # six fields: seconds first
        ("*/15 * * * * *", "Every 15 seconds"),
        ("0 30 2 * * *", "At 02:30"),
        ("30 0 9 * * *", "At 09:00:30"),
        # macros
        ("@hourly", "Every hour"),
        ("@daily", "At 00:00"),
        ("@midnight", "At 00:00"),
        ("@weekly", "At 00:00, only on Sunday"),
        ("@monthly", "At 00:00, on day 1 of the month"),
        ("@yearly", "At 00:00, on day 1 of the month, only in January"),
        ("@annually", "At 00:00, on day 1 of the month, only in January"),
        # days
        ("0 0 29 2 *", "At 00:00, on day 29 of the month, only in February"),
        ("0 0 L * *", "At 00:00, on the last day of the month"),
        ("0 0 * * 5#5", "At 00:00, on the fifth Friday of the month"),
        ("0 0 * * 5L", "At 00:00, on the last Friday of the month"),
        ("0 0 * * 0", "At 00:00, only on Sunday"),
        ("0 0 * * 7", "At 00:00, only on Sunday"),
        ("0 0 * * 1/2", "At 00:00, only on Monday, Wednesday, Friday or Sunday"),
        ("0 0 * * MON,5L", "At 00:00, only on Monday or the last Friday of the month"),
        # both day fields: "or" under the Vixie rule, "but only" where both must match
        ("0 0 1,15 * MON", "At 00:00, on day 1 and 15 of the month, or on Monday"),
        ("0 0 1 * 1-5", "At 00:00, on day 1 of the month, or on Monday through Friday"),
        ("0 0 1 * 5#5", "At 00:00, on day 1 of the month, or on the fifth Friday of the month"),
        ("0 0 */2 * MON", "At 00:00, every 2 days, but only on Monday"),
        (
            "0 0 1 * */2",
            "At 00:00, on day 1 of the month, but only on Tuesday, Thursday, Saturday or Sunday",
        ),
    ],
)
def test_describe(expression: str, text: str) -> None:
    assert describe(expression) == text


@pytest.mark.parametrize("expression", ["", "0 0 30 2 *", "60 * * * *", "@reboot"])
def test_describe_validates_first(expression: str) -> None:
    with pytest.raises(InvalidScheduleError):
        describe(expression)
