"""The embedded mode's database for tests: a migrated SQLite file in a test's own directory."""

from __future__ import annotations

from pathlib import Path

from keeperhub_scheduler.db.migrate import upgrade


def sqlite_url(directory: Path) -> str:
    url = f"sqlite:///{directory / 'scheduler.db'}"
    upgrade(url)
    return url
