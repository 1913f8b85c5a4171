"""What a new user meets first, as real processes: the demo's database found by the management
commands, missing secrets explained with the way to make one, and a `--help` without noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keeperhub_scheduler.config import DEFAULT_SQLITE_URL


def scheduler(*arguments: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd)} | extra
    return subprocess.run(
        [sys.executable, "-m", "keeperhub_scheduler.cli", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", [["status"], ["schedules", "list"], ["prune"]])
def test_without_database_url_the_embedded_database_here_is_used_and_named(
    tmp_path: Path, command: list[str]
) -> None:
    made = scheduler("migrate", cwd=tmp_path, DATABASE_URL=DEFAULT_SQLITE_URL)
    assert made.returncode == 0, made.stderr
    result = scheduler(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"note: DATABASE_URL is not set; using the embedded database {DEFAULT_SQLITE_URL}"
    ]


def test_without_database_url_or_embedded_database_the_error_names_both(tmp_path: Path) -> None:
    result = scheduler("schedules", "list", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: DATABASE_URL: required")
    assert "postgresql://" in line
    assert DEFAULT_SQLITE_URL in line
    assert "make demo" in line
    assert not (tmp_path / "keeperhub-scheduler.db").exists(), "nothing is created by a question"


def test_api_without_tokens_says_how_to_make_one(tmp_path: Path) -> None:
    result = scheduler("api", cwd=tmp_path, DATABASE_URL=DEFAULT_SQLITE_URL)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "SCHEDULER_API_TOKENS" in line
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in line


@pytest.mark.parametrize("command", [["dispatcher"], ["schedules", "list"], ["status"]])
def test_help_has_no_bool_labels(tmp_path: Path, command: list[str]) -> None:
    result = scheduler(*command, "--help", cwd=tmp_path, COLUMNS="100")
    assert result.returncode == 0, result.stderr
    assert "--help" in result.stdout
    assert "<bool>" not in result.stdout


def test_help_loads_no_queue_client_web_framework_or_database_driver(tmp_path: Path) -> None:
    """`--help` must answer at once: the heavy modules load only in the commands that use them."""
    probe = (
        "import sys\n"
        "from keeperhub_scheduler.cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('botocore', 'aiobotocore', 'fastapi', 'uvicorn', 'asyncpg', 'jinja2',\n"
        "         'sqlalchemy', 'httpx')\n"
        "print(sorted(name for name in heavy if name in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr[-2000:]
