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
from typing import Final, Literal
from urllib.parse import quote

import httpx

from keeperhub_scheduler.keeperhub.pool import AiohttpTransport
from keeperhub_scheduler.runs import RunRef, RunStatus
from keeperhub_scheduler.transport.messages import ID_PATTERN, TRIGGER_TYPE, format_instant

RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
MAX_ERROR_CHARS = 500
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


class _IgnoredCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        pass


_NO_COOKIES = _IgnoredCookies()


class _CookielessClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that keeps no cookies: one answer must not carry state into the
    next call, and reading ``Set-Cookie`` (httpx rebuilds each answer as a urllib request and an
    email message for it) cost a sixth of each call's CPU."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("the KeeperHub client keeps no cookies")


class KeeperHubClient:
    """One pooled ``httpx.AsyncClient`` for the whole process, on aiohttp's connection pool
    (see ``keeperhub.pool``) unless given another transport."""

    def __init__(
        self,
        base_url: str,
        service_key: str | None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._service_key = service_key
        self._urls: dict[str, httpx.URL] = {}
        self._client = _CookielessClient(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,  # a redirect could carry the service key elsewhere
            transport=transport or AiohttpTransport(max_connections=max_connections),
        )

    async def close(self) -> None:
        await self._client.aclose()

    def url_for(self, workflow_id: str) -> httpx.URL:
        """The execute URL, parsed once per workflow id (parsing is a tenth of a call's CPU)."""
        url = self._urls.get(workflow_id)
        if url is None:
            if not ID_PATTERN.fullmatch(workflow_id):
                raise ValueError(f"invalid workflow id {workflow_id[:64]!r}")
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            url = httpx.URL(f"{self.base_url}/api/workflow/{quote(workflow_id, safe='')}/execute")
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
        body = {
            "executionId": run.run_id,
            "input": {
                "triggerType": TRIGGER_TYPE,
                "scheduleId": run.schedule_id,
                "triggerTime": format_instant(run.scheduled_for),
            },
        }
        started = time.monotonic()
        try:
            response = await self._client.post(url, content=json.dumps(body), headers=headers)
        except httpx.TimeoutException as error:
            return CallResult(
                RETRY, None, f"timeout: {type(error).__name__}", None, _since(started)
            )
        except httpx.TransportError as error:
            reason = f"network error: {error!s}"[:MAX_ERROR_CHARS]
            return CallResult(RETRY, None, reason, None, _since(started))
        return classify(response, _since(started))


def classify(response: httpx.Response, seconds: float) -> CallResult:
    status = response.status_code
    if 200 <= status < 300:
        return CallResult(RunStatus.SUCCEEDED, status, None, None, seconds)
    error = f"HTTP {status}: {error_text(response)}"
    if status in RETRYABLE_STATUSES:
        return CallResult(RETRY, status, error, retry_after(response), seconds)
    return CallResult(RunStatus.FAILED, status, error, None, seconds)


def error_text(response: httpx.Response) -> str:
    """KeeperHub's ``{"error": ...}`` when it sent one, else the start of the body."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return str(payload["error"])[:MAX_ERROR_CHARS]
    if isinstance(payload, str):  # a bare JSON string is the error itself
        return payload[:MAX_ERROR_CHARS]
    text = response.text.strip()
    return (text or response.reason_phrase)[:MAX_ERROR_CHARS]


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    value = response.headers.get("Retry-After")
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
