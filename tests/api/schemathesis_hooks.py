"""Hooks for the schemathesis run of ``test_schemathesis`` (the CLI loads them through
``SCHEMATHESIS_HOOKS``): point half of the valid cases at rows that exist, and at cron
expressions and zones that parse, so the success paths (200, 201, 202) and the state conflicts
(409) are exercised too, not only the 404s and 422s that random ids and text meet."""

from __future__ import annotations

import zlib
from typing import Any

import schemathesis
from schemathesis.generation.meta import TestPhase

# Short ids are what the generator tries first: rows with them let it reach the 200 paths too.
SEED = """
INSERT INTO workflows (id, name, enabled) VALUES ('0', 'zero', true), ('A', 'a', true),
  ('a', 'a', false), ('-', 'dash', true), ('_', 'under', true), ('00', 'zz', true);
INSERT INTO workflow_schedules (id, workflow_id, cron_expression, timezone, interval_seconds,
  decided_through, plan_key) VALUES
  ('0', '0', '*/5 * * * *', 'Europe/Berlin', NULL, now(), 'x'),
  ('A', 'A', '@every 90s', 'UTC', 90, now(), 'x'),
  ('a', 'a', 'not a cron', 'UTC', NULL, now(), 'x');
INSERT INTO schedule_runs (id, schedule_id, workflow_id, kind, scheduled_for, due_at, status,
  created_at, finished_at) VALUES
  ('0', '0', '0', 'schedule', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'succeeded',
   now(), now()),
  ('A', '0', '0', 'manual', '2026-01-01T00:05:00Z', '2026-01-01T00:05:00Z', 'pending', now(),
   NULL);
"""

SEEDED = {
    "schedule_id": ["0", "A", "a"],
    "run_id": ["0", "A"],
    "workflow_id": ["0", "A", "a", "-", "_", "00"],
}
CRONS = ["*/5 * * * *", "0 9 * * 1-5", "@daily", "30 2 * * *", "0 0 L * *"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


@schemathesis.hook
def map_case(_: Any, case: schemathesis.Case) -> schemathesis.Case:
    meta = case.meta
    if meta is None or meta.phase.name == TestPhase.STATEFUL:
        return case  # there, links choose the ids (and it comes last)
    if case.method == "DELETE":
        spare_the_seeded_rows(case)
    elif meta.generation.mode.is_positive:
        steer(case)
    return case


def spare_the_seeded_rows(case: schemathesis.Case) -> None:
    """Deletions never reach a seeded row, so those live on for the other cases."""
    parameters = case.path_parameters or {}
    for name, value in list(parameters.items()):
        if value in SEEDED.get(name, []):
            parameters[name] = f"{value}x"


def steer(case: schemathesis.Case) -> None:
    """Half of the valid cases, chosen deterministically (hypothesis replays and shrinks)."""
    parameters = case.path_parameters or {}
    digest = zlib.crc32(repr((sorted(parameters.items()), case.body)).encode())
    if digest % 2:
        return
    for name in list(parameters):
        if name in SEEDED:
            parameters[name] = SEEDED[name][digest % len(SEEDED[name])]
    body = case.body
    if isinstance(body, dict):
        if case.path == "/v1/schedules" and "workflow_id" in body:
            body["workflow_id"] = SEEDED["workflow_id"][digest % 6]
        if isinstance(body.get("cron_expression"), str):
            body["cron_expression"] = CRONS[digest % len(CRONS)]
        if isinstance(body.get("timezone"), str):
            body["timezone"] = ZONES[digest % len(ZONES)]
