"""Fixtures shared by every test: real PostgreSQL databases (and SQLite files, for the tests run
on both) and real LocalStack queues.

A missing server fails the tests that need it with a message that says how to start it; nothing is
skipped. ``make test`` starts LocalStack and checks PostgreSQL before pytest runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.engine import create_engine
from keeperhub_scheduler.db.migrate import upgrade
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.support import postgres, sqs
from tests.support.sqlite import sqlite_url

# The fixtures that reach a server: a test whose fixtures include one is marked ``server``.
SERVER_FIXTURES = frozenset({"pg_admin_url", "localstack"})
# Files of half a minute or more whose tests carry no ``slow`` mark of their own (the chaos run's
# file belongs to another owner): marked here, so that they too start first.
SLOW_UNMARKED = frozenset({"test_chaos.py", "test_pipeline.py", "test_schemathesis.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what ``make check`` leaves out: tests that need PostgreSQL or LocalStack (also through
    a ``postgresql`` parameter, which asks for its database at run time).

    Files with a ``slow`` test go first (in their own order), so that pytest-xdist's workers start
    on the long files and the short ones fill in around them, rather than one worker finishing
    alone with a long file while the other idles.
    """
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) or (
            "postgresql" in params.values()
        ):
            item.add_marker(pytest.mark.server)
        if item.path.name in SLOW_UNMARKED:
            item.add_marker(pytest.mark.slow)
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: same order otherwise


# Lines the xdist workers handed back (tests/cron/conftest.py), printed by the controller.
WORKER_SUMMARIES: list[str] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """An xdist worker finished: keep the summary lines it computed."""
    WORKER_SUMMARIES.extend(getattr(node, "workeroutput", {}).get("cron_summaries", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in WORKER_SUMMARIES:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = postgres.admin_url()
    problem = postgres.check_reachable(url)
    if problem:
        pytest.fail(problem, pytrace=False)
    return url


@pytest.fixture(scope="session")
def migrated_template(pg_admin_url: str) -> Iterator[str]:
    """A database migrated once per run, cloned by ``database_url`` for each test."""
    name = postgres.new_name("template")
    upgrade(postgres.create_database(name))
    yield name
    postgres.drop_database(name)


@pytest.fixture
def database_url(migrated_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of this test's own (``postgresql://`` URL)."""
    with postgres.throwaway_database("test", template=migrated_template) as url:
        yield url


@pytest.fixture(params=["postgresql", "sqlite"])
def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test runs twice: on PostgreSQL (``database_url``) and on a migrated SQLite file, the
    embedded mode's database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("database_url"))
    return sqlite_url(tmp_path)


@pytest.fixture
async def any_engine(any_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(any_database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def empty_database_url(pg_admin_url: str) -> Iterator[str]:
    with postgres.throwaway_database("empty") as url:
        yield url


@pytest.fixture(scope="session")
def localstack() -> str:
    problem = sqs.check_localstack()
    if problem:
        pytest.fail(problem, pytrace=False)
    return sqs.ENDPOINT


@pytest.fixture
async def queue(localstack: str) -> AsyncIterator[QueueEndpoint]:
    """A fresh LocalStack queue and DLQ (visibility timeout 30 s) of this test's own."""
    endpoint = await sqs.create_queues()
    yield endpoint
    await sqs.delete_queues(endpoint)
