"""Property-based, as the issue's probe ran it: ``schemathesis run --checks all`` with every phase
(examples, coverage, fuzzing, stateful) against ``keeperhub-scheduler api`` on a real PostgreSQL
database, with valid and invalid input. The run must end with no failure of any kind: no 5xx, an
answer on the schema for everything (status, content type, headers, body), invalid input
refused, valid input accepted, OPTIONS and 405 listing the path's methods, the token checked.

The operations whose rules no schema can state (a cron expression's grammar, a zone's existence,
"until must be in the future") are listed in ``schemathesis.toml``, with the rule.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.api.schemathesis_hooks import SEED
from tests.api.server import serving_api
from tests.management.world import TOKEN
from tests.support import postgres

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES_PER_OPERATION = 40  # about 3,000 cases in all, half a minute on the 2-core machine


def test_every_check_of_every_phase_passes(migrated_template: str, tmp_path: Path) -> None:
    with (
        postgres.throwaway_database("schemathesis", template=migrated_template) as url,
        serving_api(url, tmp_path / "api.log") as api,
    ):
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(SEED)  # type: ignore[arg-type]
        command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG)]
        command += ["run", f"{api.url}/openapi.json", "--checks", "all"]
        command += ["--phases", "examples,coverage,fuzzing,stateful"]
        command += ["--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "1"]
        command += ["--header", f"Authorization: Bearer {TOKEN}"]
        command += ["--continue-on-failure", "--no-color"]
        result = subprocess.run(
            command,
            cwd=tmp_path,  # where it keeps its cache
            env=os.environ
            | {"SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks", "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        report = result.stdout + result.stderr
        assert result.returncode == 0, report[-8000:]
        summary = report.strip().splitlines()[-1]
        assert " passed" in report
        assert "failure" not in summary, report[-8000:]
        assert "error" not in summary, report[-8000:]
        for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
            assert f"✅ {phase}" in report, report[-8000:]
        assert "Traceback" not in (tmp_path / "api.log").read_text()
