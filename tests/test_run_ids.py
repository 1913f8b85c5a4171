"""Run ids: UUIDv7 strings, ordered by creation time, never the same twice (they are the
executionId and Idempotency-Key KeeperHub deduplicates by)."""

from __future__ import annotations

import uuid

from keeperhub_scheduler.runs import new_run_id


def test_a_run_id_is_a_uuid7_that_sorts_by_creation_time() -> None:
    ids = [new_run_id() for _ in range(5_000)]
    parsed = [uuid.UUID(run_id) for run_id in ids]
    assert {(value.version, value.variant) for value in parsed} == {(7, uuid.RFC_4122)}
    assert [str(value) for value in parsed] == ids  # the canonical lower-case form
    assert len(set(ids)) == len(ids)
    milliseconds = [value.int >> 80 for value in parsed]
    assert milliseconds == sorted(milliseconds)
