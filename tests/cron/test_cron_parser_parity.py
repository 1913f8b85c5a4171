"""The engine against cron-parser 5 itself: validity and the next 5 fire times, a few thousand
expressions in several zones (see `parity.py`).

cron-parser is installed from the npm registry by ``scripts/cron-parser.sh``, at the version
pinned in ``tests/cron/cron_parser/package-lock.json`` (the newest in KeeperHub's range ^5.4.0).
Every query must agree, or be explained by one of the deliberate differences in
``parity.DELIBERATE``; fire times near a clock change are left out (our DST policy is the other).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from .parity import (
    DELIBERATE,
    INSTALL,
    ROOT,
    SUMMARIES,
    Answer,
    Query,
    ask_cron_parser,
    ask_ours,
    comparable,
    queries,
    respelled,
    verdict,
)

pytestmark = pytest.mark.waits  # on Node.js answering thousands of queries


@pytest.fixture(scope="session")
def cron_parser_version() -> str:
    """Install (or find installed) the pinned cron-parser; fail, never skip, without Node."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "cron-parser.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"cannot install cron-parser: {done.stderr.strip()}", pytrace=False)
    package = json.loads((INSTALL / "node_modules" / "cron-parser" / "package.json").read_text())
    lock = json.loads((ROOT / "tests/cron/cron_parser/package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/cron-parser"]["version"]
    assert package["version"] == pinned
    return str(package["version"])


def _respelt_answers(
    batch: list[Query], ours: list[Answer], theirs: list[Answer]
) -> dict[int, Answer]:
    """cron-parser's answers for the expressions only it refused, spelled its way."""
    asks = {
        index: respelled(query.expression)
        for index, query in enumerate(batch)
        if ours[index].ok and not theirs[index].ok
    }
    wanted = {index: text for index, text in asks.items() if text is not None}
    second = [
        Query(text, batch[index].zone, batch[index].after_ms, batch[index].seed)
        for index, text in wanted.items()
    ]
    return dict(zip(wanted, ask_cron_parser(second), strict=True))


def test_engine_agrees_with_cron_parser(cron_parser_version: str) -> None:
    batch = queries()
    theirs = ask_cron_parser(batch)
    ours = [ask_ours(query) for query in batch]
    respelt = _respelt_answers(batch, ours, theirs)
    verdicts = [verdict(query, ours[i], theirs[i], respelt.get(i)) for i, query in enumerate(batch)]
    compared = sum(
        len(comparable(q.zone, ours[i].fires, theirs[i].fires)[0])
        for i, q in enumerate(batch)
        if verdicts[i] == "same" and ours[i].ok
    )
    differences = [
        f"{q.expression!r} in {q.zone} after {q.after_ms} seed {q.seed}:"
        f" ours {ours[i]} cron-parser {theirs[i]}"
        for i, q in enumerate(batch)
        if verdicts[i] == "different"
    ]
    counts = Counter(verdicts)
    deliberate = ", ".join(f"{name} {counts[name]}" for name in DELIBERATE if counts[name])
    expressions = len({query.expression for query in batch})
    summary = (
        f"cron-parser {cron_parser_version} differential: {expressions} expressions,"
        f" {len(differences)} differences ({len(batch)} queries: {counts['same']} identical,"
        f" {compared} fire times compared; deliberate: {deliberate})"
    )
    SUMMARIES.append(summary)
    assert not differences, summary + "\n" + "\n".join(differences[:30])
    # Not vacuous: most queries are compared, with thousands of fire times.
    assert counts["same"] > 0.8 * len(batch)
    assert compared > 3 * len(batch)
    assert sum(answer.ok for answer in ours) > 0.6 * len(batch)
