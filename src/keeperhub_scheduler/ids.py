"""Identifiers: schedule ids like KeeperHub's, and time-ordered run ids."""

from __future__ import annotations

import os
import secrets
import time
import uuid

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_schedule_id() -> str:
    """21 lowercase letters and digits, the shape of KeeperHub's own generated ids."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(21))


def new_run_id() -> str:
    """A UUIDv7 string: random, but ordered by creation time, so index inserts stay local.

    It is also the ``executionId`` and ``Idempotency-Key`` KeeperHub receives for the run.
    """
    milliseconds = time.time_ns() // 1_000_000
    value = (milliseconds & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= int.from_bytes(os.urandom(10), "big") & ((1 << 76) - 1)
    value = (value & ~(0b11 << 62)) | (0b10 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))
