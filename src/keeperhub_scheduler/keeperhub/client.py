"""The HTTP client for KeeperHub's ``POST /api/workflow/{id}/execute``.

Every attempt of a run sends the same ``executionId`` and ``Idempotency-Key`` (the run id), so
KeeperHub can tell a retry from a new execution. The answer is classified once, here:

* 2xx: ``succeeded``.
* network error, timeout, 408, 429 and 5xx: ``retry`` (429/503 may carry ``Retry-After``).
* any other status (400, 401, 403, 404, 422, a redirect ...): ``failed``, final, not retried.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quoted
from typing import Final, Literal
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from keeperhub_scheduler.runs import RunRef, RunStatus
from keeperhub_scheduler.transport.messages import ID_PATTERN, TRIGGER_TYPE, format_instant

RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
MAX_ERROR_CHARS = 500
MAX_BODY_BYTES = 64 * 1024  # of an answer's body: only the start of an error is kept
URL_CACHE_SIZE = 4096  # parsed URLs kept, one per workflow id

RETRY: Final = "retry"
# The run's next status (succeeded, failed: final) or another attempt.
Outcome = Literal[RunStatus.SUCCEEDED, RunStatus.FAILED, "retry"]


@dataclass(frozen=True)
class CallResult:
    outcome: Outcome
    status: int | None  # None: no HTTP answer (network error, timeout)
    error: str | None
    retry_after: float | None  # seconds, from a Retry-After header
    seconds: float


@dataclass(frozen=True)
class Answer:
    """What is kept of KeeperHub's answer: the status, the headers, the start of the body."""

    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes


class KeeperHubClient:
    """One pooled ``aiohttp.ClientSession`` for the whole process.

    aiohttp alone (no httpx on top of it) hands out a pooled connection in constant time, keeps
    no cookies (one answer must not carry state into the next call), looks up no proxy from the
    environment (KeeperHub is reached directly, and the lookup per request cost as much CPU as
    the rest of the call) and follows no redirect (it could carry the service key elsewhere).
    """

    def __init__(
        self,
        base_url: str,
        service_key: str | None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_connections: int = 100,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._service_key = service_key
        self._max_connections = max_connections
        self._max_body_bytes = max_body_bytes
        self._urls: dict[str, URL] = {}
        # ``connect`` bounds the wait for a pooled connection, ``sock_connect`` the TCP connect,
        # ``sock_read`` each wait for the answer's bytes.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=read_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None  # opened inside the running loop

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url_for(self, workflow_id: str) -> URL:
        """The execute URL, parsed once per workflow id (parsing is a tenth of a call's CPU)."""
        url = self._urls.get(workflow_id)
        if url is None:
            if not ID_PATTERN.fullmatch(workflow_id):
                raise ValueError(f"invalid workflow id {workflow_id[:64]!r}")
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            url = URL(f"{self.base_url}/api/workflow/{quote(workflow_id, safe='')}/execute")
            self._urls[workflow_id] = url
        return url

    async def execute(self, run: RunRef) -> CallResult:
        try:
            url = self.url_for(run.workflow_id)
        except ValueError as error:
            return CallResult(RunStatus.FAILED, None, str(error), None, 0.0)  # never sent anywhere
        headers = {"Content-Type": "application/json", "Idempotency-Key": run.run_id}
        if self._service_key:
            headers["X-Service-Key"] = self._service_key
        started = time.monotonic()
        try:
            answer = await self.post(url, request_body(run), headers)
        except aiohttp.ConnectionTimeoutError:
            return CallResult(RETRY, None, "timeout: ConnectTimeout", None, _since(started))
        except TimeoutError:  # aiohttp's read timeouts are TimeoutErrors too
            return CallResult(RETRY, None, "timeout: ReadTimeout", None, _since(started))
        except (aiohttp.ClientError, OSError) as error:
            reason = f"network error: {error!s}"[:MAX_ERROR_CHARS]
            return CallResult(RETRY, None, reason, None, _since(started))
        return classify(answer, _since(started))

    async def post(self, url: URL, data: bytes, headers: dict[str, str]) -> Answer:
        """One POST; the body is read up to the cap (the rest is dropped with its connection)."""
        session = self._session or self._open()
        async with session.post(
            url, data=data, headers=headers, allow_redirects=False, timeout=self._timeout
        ) as response:
            body = await self._read(response)
            return Answer(response.status, response.reason or "", response.headers, body)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        body = bytearray()
        # Until the end or the cap; a small answer comes with its end, so one read takes it all.
        while not response.content.at_eof() and len(body) < self._max_body_bytes:
            chunk = await response.content.read(self._max_body_bytes - len(body))
            if not chunk:
                break
            body += chunk
        return bytes(body)

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        )
        return self._session


def request_body(run: RunRef) -> bytes:
    """The execute call's body, as ``json.dumps`` writes it (a test holds the two equal), joined
    by hand as the queue message's is: one a run, and walking a dict through the encoder cost
    more than the rest of building the call. Each string is escaped by the encoder's function."""
    return (
        f'{{"executionId": {_quoted(run.run_id)}, "input": {{"triggerType": "{TRIGGER_TYPE}",'
        f' "scheduleId": {_quoted(run.schedule_id)},'
        f' "triggerTime": {_quoted(format_instant(run.scheduled_for))}}}}}'
    ).encode()


def classify(answer: Answer, seconds: float) -> CallResult:
    status = answer.status
    if 200 <= status < 300:
        return CallResult(RunStatus.SUCCEEDED, status, None, None, seconds)
    error = f"HTTP {status}: {error_text(answer)}"
    if status in RETRYABLE_STATUSES:
        return CallResult(RETRY, status, error, retry_after(answer), seconds)
    return CallResult(RunStatus.FAILED, status, error, None, seconds)


def error_text(answer: Answer) -> str:
    """KeeperHub's ``{"error": ...}`` when it sent one, else the start of the body."""
    text = answer.body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return str(payload["error"])[:MAX_ERROR_CHARS]
    if isinstance(payload, str):  # a bare JSON string is the error itself
        return payload[:MAX_ERROR_CHARS]
    return (text.strip() or answer.reason)[:MAX_ERROR_CHARS]


def retry_after(answer: Answer) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    value = answer.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _since(started: float) -> float:
    return time.monotonic() - started
