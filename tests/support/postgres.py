"""Throwaway PostgreSQL databases for tests: one migrated template, cloned per test."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HOW_TO_START = (
    "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    " (or point TEST_DATABASE_ADMIN_URL at a server where the user may create databases)"
)


def admin_url() -> str:
    return os.environ.get("TEST_DATABASE_ADMIN_URL", DEFAULT_ADMIN_URL)


def check_reachable(url: str) -> str | None:
    """None when the server answers, else a message that says how to start it."""
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as error:
        return f"PostgreSQL is not reachable at {url} ({error}); {HOW_TO_START}"
    return None


def url_for(database: str) -> str:
    return make_url(admin_url()).set(database=database).render_as_string(hide_password=False)


def new_name(prefix: str) -> str:
    return f"khs_{prefix}_{secrets.token_hex(4)}"


def _admin(statement: str) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as connection:
        connection.execute(statement)  # type: ignore[arg-type]


def create_database(name: str, template: str | None = None) -> str:
    clause = f' TEMPLATE "{template}"' if template else ""
    _admin(f'CREATE DATABASE "{name}"{clause}')
    return url_for(name)


def drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def throwaway_database(prefix: str, template: str | None = None) -> Iterator[str]:
    name = new_name(prefix)
    url = create_database(name, template)
    try:
        yield url
    finally:
        drop_database(name)


def allow_connections(database_url: str, allowed: bool) -> None:
    """Open or close one database to connections, and end the ones it has when closing it: an
    outage of this database alone, for a test to start and end."""
    name = make_url(database_url).database
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )


def terminate_connections(database_url: str) -> int:
    """Kill every server process of one database, as a restart would; how many there were."""
    name = make_url(database_url).database
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)
