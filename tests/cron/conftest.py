"""The differential test's count at the end of pytest's output, where CI logs show it."""

from __future__ import annotations

import pytest

from .parity import SUMMARIES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in SUMMARIES:
        terminalreporter.write_line(line)
