"""The DST corpus: the engine against the brute-force reference at every clock change.

Every zone in the tz database with an offset change between 2000 and 2037, every such change,
nineteen jobs built around it and nine starting points (see `corpus.py`): the first fires must be
identical, instant for instant. Zone names whose changes in those years are identical (links such
as US/Eastern, and zones that have shared rules since 2000) are checked once, through the first
name in alphabetical order (set CRON_CORPUS_EVERY_NAME=1 to check every name, about three times
the work); `test_zones.py` checks separately that the engine finds every change of every name.
The zones run in parallel processes; a failure lists the first 20 mismatches.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import zoneinfo
from concurrent.futures import ProcessPoolExecutor

import pytest

from .corpus import check_zone
from .transitions import zone_changes


def distinct_histories() -> dict[tuple[object, ...], list[str]]:
    """Zone names with at least one change in 2000-2037, grouped by identical changes."""
    groups: dict[tuple[object, ...], list[str]] = {}
    for name in sorted(zoneinfo.available_timezones() - {"localtime", "posixrules"}):
        changes = zone_changes(name)
        if changes:
            groups.setdefault(changes, []).append(name)
    return groups


# About 70 s on two idle cores; the margin is for machines shared with other work.
@pytest.mark.slow  # a minute of CPU: `make test` runs it, `make check` does not
@pytest.mark.timeout(900)
def test_engine_matches_reference_at_every_clock_change(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    groups = distinct_histories()
    # Largest first, so that the last process to finish is not left with a long zone.
    ordered = sorted(groups.items(), key=lambda group: -len(group[0]))
    every_name = os.environ.get("CRON_CORPUS_EVERY_NAME") == "1"
    representatives = [n for _, names in ordered for n in (names if every_name else names[:1])]
    workers = max(2, os.cpu_count() or 2)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        results = list(pool.map(check_zone, representatives))
    cases = sum(count for count, _ in results)
    mismatches = [line for _, lines in results for line in lines]
    summary = (
        f"DST corpus: {sum(len(n) for n in groups.values())} zone names with changes in 2000-2037,"
        f" {len(groups)} distinct histories, {sum(len(c) for c in groups)} changes"
        f" ({len(representatives)} names checked),"
        f" {cases} cases, {len(mismatches)} mismatches, {time.perf_counter() - started:.0f} s"
    )
    with capsys.disabled():
        print(f"\n{summary}")
    assert not mismatches, summary + "\n" + "\n".join(mismatches[:20])
