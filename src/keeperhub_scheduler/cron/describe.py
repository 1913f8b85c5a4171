"""Plain-English descriptions of cron expressions, by cron-descriptor."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from cron_descriptor import ExpressionDescriptor, Options

from .parse import parse_cron

# "a-a/n" is the single value a; cron-descriptor would read it as "every n, a through a".
_SAME_ENDS_STEP: Final = re.compile(r"(?<![0-9A-Z])([0-9A-Z]+)-\1/[0-9]+")


def _options() -> Options:
    options = Options()
    options.use_24hour_time_format = True
    options.day_of_week_start_index_zero = True  # 0 is Sunday, as in our parser
    options.verbose = False
    return options


@lru_cache(maxsize=1024)
def _describe(expression: str) -> str:
    expr = parse_cron(expression)  # validate first: cron-descriptor is lenient
    fields = [_SAME_ENDS_STEP.sub(r"\1", text) for text in expr.fields]
    text = " ".join(fields if expr.has_seconds else fields[1:])
    return str(ExpressionDescriptor(text, _options()).get_description())


def describe(expression: str) -> str:
    """A plain-English description, e.g. "At 09:00, Monday through Friday".

    Raises InvalidScheduleError for an invalid expression. Macros are described by what they
    stand for (``@daily`` is "At 00:00").
    """
    parse_cron(expression)  # type check and validation before the cache sees the argument
    return _describe(expression)
