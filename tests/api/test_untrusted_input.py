"""What anyone who reaches the API may send, against ``keeperhub-scheduler api`` as users run it:
bodies of any size, with and without a token, and crafted pagination cursors.

Nothing is read before the token is checked, nothing past the body-size limit, and no input gets
a 500: the process's memory stays where it was (read from /proc, peak included).
"""

from __future__ import annotations

import base64
import json
import select
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.server import ApiProcess, serving_api
from tests.management.world import TOKEN
from tests.support import postgres

BIG = 200 * 1024 * 1024
PIECE = 1024 * 1024
# What the kernel's socket buffers take in without the server reading: the client gets this far.
UNREAD_SLACK = 32 * 1024 * 1024
MEMORY_SLACK_MIB = 40  # against the 200 MB sent (and 600 MB that used to stay after one)


@pytest.fixture(scope="module")
def api(migrated_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    log = tmp_path_factory.mktemp("api") / "api.log"
    with (
        postgres.throwaway_database("untrusted", template=migrated_template) as url,
        serving_api(url, log) as api,
    ):
        yield api


@dataclass
class Answer:
    status: int
    body: Any
    sent: int  # bytes of the body sent before the answer came (or the connection closed)


def send_big_body(api: ApiProcess, path: str, *, token: str | None, chunked: bool) -> Answer:
    """``_send_big_body`` until an answer arrives whole. The server answers without reading the
    body and closes; closing with the client's bytes unread makes the kernel send a reset, which
    can overtake the answer's body on its way to this client (its head arrived, its body was
    dropped). That is TCP's race, not the server's answer: the same request is sent again."""
    for _ in range(3):
        answer = _send_big_body(api, path, token=token, chunked=chunked)
        if answer is not None:
            return answer
    raise AssertionError("three answers in a row cut off by the connection's reset")


def _send_big_body(
    api: ApiProcess, path: str, *, token: str | None, chunked: bool
) -> Answer | None:
    """POST ``BIG`` bytes of JSON (one long string, which parses into one 200 MB value) as a
    client that keeps sending until the server answers, and reads the answer as soon as it
    comes: what an attacker's script does, and what curl does."""
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{api.port}",
        "Content-Type: application/json",
    ]
    head += [f"Authorization: Bearer {token}"] if token else []
    head += ["Transfer-Encoding: chunked" if chunked else f"Content-Length: {BIG}"]
    prefix, suffix = b'{"workflow_id": "', b'"}'
    filler = BIG - len(prefix) - len(suffix)
    pieces = [prefix, *(b"a" * min(PIECE, filler - at) for at in range(0, filler, PIECE)), suffix]
    framed = iter(
        [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"]
        if chunked
        else pieces
    )
    connection = socket.create_connection(("127.0.0.1", api.port))
    connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    connection.setblocking(False)
    received, sent, pending, writing = b"", 0, b"", True
    deadline = time.monotonic() + 120
    try:
        while not _complete(received):
            assert time.monotonic() < deadline, f"no answer; {sent} bytes sent"
            if writing and not pending:
                pending = next(framed, b"")
                writing = bool(pending)
            readable, writable, _ = select.select(
                [connection], [connection] if writing else [], [], 5
            )
            if readable:
                try:
                    data = connection.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                received += data
            elif writable:
                try:
                    count = connection.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    writing = False
                    continue
                sent += count
                pending = pending[count:]
    finally:
        connection.close()
    if not _complete(received):
        return None  # reset before the whole answer came
    status_line, _, rest = received.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return Answer(int(status_line.split()[1]), json.loads(body), sent)


def _complete(received: bytes) -> bool:
    head, found, body = received.partition(b"\r\n\r\n")
    lengths = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    return bool(found and lengths) and len(body) >= int(lengths[0].split(b":")[1])


def call(api: ApiProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        api.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, _parsed(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, _parsed(error.read())


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return body.decode(errors="replace")  # not JSON: shown as it came, in the failure


def test_a_200_mb_body_is_refused_before_it_is_read_and_memory_stays_flat(
    api: ApiProcess,
) -> None:
    # Warm up the paths the big bodies take, so what is measured is what they cost.
    assert call(api, "POST", "/v1/preview", {"cron_expression": "@daily"})[0] == 200
    assert send_small_unauthorized(api) == 401
    rss_before, _ = api.memory_mib()
    for token in (None, TOKEN):
        for chunked in (False, True):
            answer = send_big_body(api, "/v1/schedules", token=token, chunked=chunked)
            case = f"token={bool(token)} chunked={chunked}: {answer}"
            if token:
                assert answer.status == 413, case
                assert answer.body == {"detail": "the request body is larger than 1048576 bytes"}
            else:
                assert answer.status == 401, case
                assert answer.body["detail"].startswith("missing bearer token")
            assert answer.sent < UNREAD_SLACK, case  # answered long before the body was through
    rss_after, peak = api.memory_mib()
    assert peak - rss_before < MEMORY_SLACK_MIB, (rss_before, rss_after, peak)
    assert call(api, "POST", "/v1/preview", {"cron_expression": "@daily"})[0] == 200  # serving
    log = api.log.read_text()
    assert "Traceback" not in log
    assert TOKEN not in log


def send_small_unauthorized(api: ApiProcess) -> int:
    request = urllib.request.Request(api.url + "/v1/preview", method="POST", data=b"{}")
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as error:
        return error.code
    return 200


def crafted(instant: str) -> str:
    """A cursor in the format the API handed out before (base64url JSON), dated ``instant``."""
    raw = json.dumps([instant, "x"], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        crafted("0001-01-01T00:00:00+14:00"),  # was an OverflowError binding it: a 500
        crafted("9999-12-31T23:59:59-14:00"),
        "garbage",
        "1767225600000000.x.y",
        "1767225600000000." + "x" * 129,
    ],
)
def test_a_crafted_cursor_is_a_422_naming_it_on_every_paged_route(
    api: ApiProcess, cursor: str
) -> None:
    schedule_id = a_schedule(api)
    for path in ("/v1/runs", "/v1/schedules", f"/v1/schedules/{schedule_id}/runs"):
        status, body = call(api, "GET", f"{path}?cursor={cursor}")
        assert (status, body) == (
            422,
            {"detail": [{"field": "cursor", "message": "cursor is not one this API handed out"}]},
        ), path


@pytest.mark.parametrize("cursor", ["-9999999999999999999.x", "9999999999999999999.x", "0.x"])
def test_a_cursor_at_either_end_of_time_pages_from_that_end(api: ApiProcess, cursor: str) -> None:
    schedule_id = a_schedule(api)
    for path in ("/v1/runs", "/v1/schedules", f"/v1/schedules/{schedule_id}/runs"):
        status, body = call(api, "GET", f"{path}?cursor={cursor}")
        assert status == 200, (path, body)
        assert body["next_cursor"] is None


def a_schedule(api: ApiProcess) -> str:
    call(api, "POST", "/v1/workflows", {"id": "wf-cursor", "name": "cursor"})
    status, body = call(api, "GET", "/v1/schedules?workflow_id=wf-cursor")
    if body["items"]:
        return str(body["items"][0]["id"])
    status, body = call(
        api, "POST", "/v1/schedules", {"workflow_id": "wf-cursor", "cron_expression": "@daily"}
    )
    assert status == 201, body
    return str(body["id"])
