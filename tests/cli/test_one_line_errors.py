"""Every command, when it fails, says so in one line on stderr with the documented exit code (1:
the work failed, 2: bad input or configuration), as a real process: never a traceback, never a
piece of a secret."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.support import processes
from tests.support.standin import free_port

pytestmark = pytest.mark.waits  # on the CLI processes it starts

CLOSED = f"postgresql://scheduler:s3cret-pw@127.0.0.1:{free_port()}/keeperhub"
AT_SIGN = "postgresql://u:PW@tail99@127.0.0.1/db"
ALL_TOKENS = {"SCHEDULER_API_TOKENS": "a-good-token-0123456789"}


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr[-3000:]
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("error: ")
    assert "s3cret-pw" not in result.stderr + result.stdout
    return lines[0]


@pytest.mark.parametrize("command", [["migrate"], ["dispatcher", "--once"], ["status"]])
def test_the_database_down_is_one_line_and_exit_1(command: list[str]) -> None:
    result = processes.run(command, processes.environment(CLOSED) | ALL_TOKENS)
    line = one_line(result, 1)
    assert line.startswith("error: database error: connection failed:"), line
    assert "Connection refused" in line


@pytest.mark.parametrize(
    ("url", "message", "command"),
    [
        (AT_SIGN, "the password (or user name) holds an '@'", ["migrate"]),
        (AT_SIGN, "the password (or user name) holds an '@'", ["dispatcher", "--once"]),
        (AT_SIGN, "the password (or user name) holds an '@'", ["status"]),
        ("postgresql://[bad", "the host is not a host name or address", ["migrate"]),
        ("postgresql://u:pw@host:port/db", "is not a database URL like", ["migrate"]),
        ("postgresql", "is not a database URL like", ["migrate"]),
    ],
)
def test_an_unusable_database_url_is_one_line_and_exit_2(
    url: str, message: str, command: list[str]
) -> None:
    result = processes.run(command, processes.environment(url))
    line = one_line(result, 2)
    assert line.startswith(f"error: DATABASE_URL: Value error, {message}"), line
    for piece in ("PW", "tail99"):  # the halves of the password
        assert piece not in result.stderr


def test_the_queue_down_is_one_line_and_exit_1() -> None:
    port = free_port()
    env = processes.environment(CLOSED) | {
        "SQS_QUEUE_URL": f"http://127.0.0.1:{port}/000000000000/runs",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    line = one_line(processes.run(["queue", "setup"], env), 1)
    assert line.startswith("error: EndpointConnectionError: Could not connect"), line


def test_a_weak_api_token_stops_the_api_in_one_line() -> None:
    env = processes.environment(CLOSED) | {"SCHEDULER_API_TOKENS": "changeme"}
    line = one_line(processes.run(["api", "--port", str(free_port())], env), 2)
    assert "make one with: python -c" in line
    assert "changeme" not in line


def test_a_redrive_before_the_last_attempt_is_one_line_and_exit_2() -> None:
    env = processes.environment(CLOSED) | {"SCHEDULER_MAX_RECEIVE_COUNT": "2"}
    line = one_line(processes.run(["dispatcher", "--once"], env), 2)
    assert line.startswith("error: SCHEDULER_MAX_RECEIVE_COUNT (2) must be at least"), line


@pytest.mark.parametrize(
    ("command", "setting"),
    [
        (["dispatcher"], "SCHEDULER_HEALTH_PORT"),
        (["executor"], "SCHEDULER_HEALTH_PORT"),
        (["api"], "SCHEDULER_API_PORT"),
    ],
)
def test_a_port_in_use_is_one_line_naming_it_and_its_setting(
    database_url: str, command: list[str], setting: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = (
            processes.environment(database_url)
            | ALL_TOKENS
            | {
                setting: str(port),
                "SCHEDULER_API_HOST": "127.0.0.1",
            }
        )
        result = processes.run(command, env)
    line = one_line(result, 1)
    assert f":{port}" in line, line
    assert setting in line, line
