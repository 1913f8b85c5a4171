"""Keyset pagination: an opaque cursor that names the last row of a page.

A cursor is ``(instant, id)`` of the last item, base64url-encoded JSON. Keyset (not offset)
pagination stays fast on a large history and does not skip or repeat rows while new runs arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime

from keeperhub_scheduler.errors import InvalidScheduleError
from keeperhub_scheduler.management.models import ID_PATTERN


def encode_cursor(instant: datetime, ident: str) -> str:
    raw = json.dumps([instant.isoformat(), ident], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        instant_text, ident = json.loads(raw)
        instant = datetime.fromisoformat(instant_text)
        if instant.tzinfo is None or not re.fullmatch(ID_PATTERN, ident):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidScheduleError(
            "cursor is not one this API handed out", field="cursor"
        ) from None
    return instant, ident
