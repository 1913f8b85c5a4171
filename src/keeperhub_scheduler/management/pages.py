"""Keyset pagination: a cursor names the last row of a page.

A cursor is ``<microseconds since 1970-01-01 UTC>.<id>`` of the last item, e.g.
``1767225600000000.wf_nightly``: a format the OpenAPI schema states exactly (``CURSOR_PATTERN``),
so every cursor it allows means something. One outside the range of dates pages from that range's
end, which is where it points. Keyset (not offset) pagination stays fast on a large history and
does not skip or repeat rows while new runs arrive.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from keeperhub_scheduler.errors import InvalidScheduleError
from keeperhub_scheduler.management.models import CURSOR_PATTERN

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The instants every database binds: a day inside Python's range, so no UTC offset leaves it.
_FIRST = datetime(1, 1, 2, tzinfo=UTC)
_LAST = datetime(9999, 12, 30, tzinfo=UTC)


def encode_cursor(instant: datetime, ident: str) -> str:
    return f"{(instant - EPOCH) // _MICROSECOND}.{ident}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not re.fullmatch(CURSOR_PATTERN, cursor):  # the request models check it first
        raise InvalidScheduleError("cursor is not one this API handed out", field="cursor")
    micros_text, _, ident = cursor.partition(".")
    micros = int(micros_text)
    first, last = (_FIRST - EPOCH) // _MICROSECOND, (_LAST - EPOCH) // _MICROSECOND
    return EPOCH + min(max(micros, first), last) * _MICROSECOND, ident
