"""A real browser against the real thing: Debian's Chromium, driven by Playwright, on
``keeperhub-scheduler dev --demo`` running as its own process on a throwaway PostgreSQL database
(the dispatcher, the executor, the API with the status page, and the KeeperHub stand-in).

One demo process and one browser for the module; each test gets a fresh browser context (its own
cookies) that is already logged in. Screenshots go to ``.cache/screenshots/``.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import postgres
from tests.support.standin import free_port

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".cache" / "screenshots"
LINK = re.compile(r"(http://\S+)/ui/login/once\?code=(\S+)")


@dataclass
class Demo:
    base_url: str  # the API's, e.g. http://127.0.0.1:41234
    login_link: str
    token: str
    log: Path
    api: httpx.Client

    def create_schedule(self, name: str, cron: str = "*/5 * * * * *") -> str:
        """A workflow named ``name`` and its schedule, through the REST API; the schedule id."""
        workflow_id = f"wf_{secrets.token_hex(5)}"
        made = self.api.post("/v1/workflows", json={"id": workflow_id, "name": name})
        assert made.status_code == 201, made.text
        schedule = self.api.post(
            "/v1/schedules", json={"workflow_id": workflow_id, "cron_expression": cron}
        )
        assert schedule.status_code == 201, schedule.text
        return str(schedule.json()["id"])

    def schedule(self, schedule_id: str) -> dict[str, Any]:
        answer = self.api.get(f"/v1/schedules/{schedule_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def start_demo(database_url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], Demo]:
    token = secrets.token_urlsafe(16)
    log = workdir / "demo.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "DATABASE_URL": database_url,
        "SCHEDULER_API_TOKENS": token,
        "SCHEDULER_API_PORT": str(free_port()),
        "SCHEDULER_LOG_LEVEL": "WARNING",
        "SCHEDULER_HEALTH_PORT": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "keeperhub_scheduler.cli", "dev", "--demo",
         "--standin-port", str(free_port())],
        env=env, cwd=workdir, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = LINK.search(log.read_text(errors="replace"))
        if found or process.poll() is not None:
            break
        time.sleep(0.1)
    if not found:
        process.kill()
        pytest.fail(f"the demo printed no login link:\n{log.read_text(errors='replace')}")
    base = found.group(1)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    while time.monotonic() < deadline:
        try:
            if api.get("/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return process, Demo(base, found.group(0), token, log, api)


# Module scope, all three: while Playwright's sync API is open, its event loop runs in this
# thread, and pytest-asyncio cannot run the async tests of the modules after this one.
@pytest.fixture(scope="module")
def demo(migrated_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    workdir = tmp_path_factory.mktemp("demo")
    with postgres.throwaway_database("ui", template=migrated_template) as url:
        process, running = start_demo(url, workdir)
        try:
            yield running
        finally:
            running.api.close()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: scripts/test.sh installs Debian's chromium"
            " (apt-get install -y chromium)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def logged_in_state(browser: Any, demo: Demo) -> dict[str, Any]:
    """The cookies of one login through the demo's one-time link (it works only once)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(demo.login_link)
    assert page.url == f"{demo.base_url}/ui/", page.content()
    state: dict[str, Any] = context.storage_state()
    context.close()
    return state


class Watched:
    """A page whose console errors (a Content-Security-Policy violation is one) are kept."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error" and "favicon" not in message.text:
            self.errors.append(message.text)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def page(browser: Any, logged_in_state: dict[str, Any]) -> Iterator[Watched]:
    context = browser.new_context(
        storage_state=logged_in_state, viewport={"width": 1360, "height": 860}
    )
    watched = Watched(context.new_page())
    yield watched
    context.close()
    csp = [error for error in watched.errors if "Content Security Policy" in error]
    assert not csp, csp
    assert not watched.errors, watched.errors
