"""The differential test's count at the end of pytest's output, where CI logs show it.

Under pytest-xdist the test runs in a worker: the worker hands its lines to the controller in
``workeroutput`` (the hooks in tests/conftest.py), which prints them with its own summary.
"""

from __future__ import annotations

import pytest

from .parity import SUMMARIES


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker
        workeroutput["cron_summaries"] = list(SUMMARIES)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in SUMMARIES:
        terminalreporter.write_line(line)
