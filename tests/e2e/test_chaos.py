"""A short chaos run in the suite: bench/chaos.py for 60 s, nothing missing, nothing twice.

The run kills dispatchers and executors with SIGKILL every few seconds, freezes its own LocalStack
for 20 s, and has the stand-in fail 10% of calls and stall 2% past the read timeout (see the
module docstring of bench/chaos.py). Its table is printed into the test output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_sixty_seconds_of_chaos_lose_nothing_and_run_nothing_twice(
    pg_admin_url: str, localstack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result_file = tmp_path / "chaos.json"
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--duration", "60",
         "--json", str(result_file)],
        capture_output=True, text=True, timeout=840, check=False, cwd=ROOT,
    )  # fmt: skip
    with capsys.disabled():
        print("\n" + finished.stdout[-3000:])
    assert result_file.exists(), finished.stderr[-3000:]
    result = json.loads(result_file.read_text())
    assert result["expected"] > 2000
    assert result["kills"] >= 8
    assert result["missing"] == 0
    assert result["duplicated"] == 0
    assert finished.returncode == 0
