"""The status page in a real browser (Chromium) against ``dev --demo`` on PostgreSQL: logging in,
the demo's lane gaining marks while the page is open, pausing from a schedule's page and seeing
the skips, running a schedule now and opening the run, markup in a workflow name shown as text,
and an action without the CSRF token refused. Every page is checked for console errors, so a
Content-Security-Policy violation fails the test that caused it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.ui.browser import Demo, Watched, browser, demo, logged_in_state, page
from tests.ui.world import XSS_NAME

pytestmark = pytest.mark.waits  # a browser and a demo process

__all__ = ["browser", "demo", "logged_in_state", "page"]

DEMO_NAME = "Demo: say hello every 5 seconds"


def lane_of(page: Any, name: str) -> Any:
    page.wait_for_selector("svg g.lane", timeout=15_000)
    for lane in page.query_selector_all("svg g.lane"):
        if lane.query_selector("a > title").text_content().startswith(name):
            return lane
    raise AssertionError(f"no lane for {name!r}")


def test_the_one_time_link_logs_in_once_and_the_token_form_logs_in(
    browser: Any, demo: Demo, logged_in_state: dict[str, Any]
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(demo.login_link)  # the fixture used it already
    assert "/ui/login/once" in page.url
    assert "used already or has expired" in page.text_content("p.error")
    page.goto(f"{demo.base_url}/ui/timeline")
    assert "/ui/login?next=%2Ftimeline" in page.url
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    assert "not one of the API's tokens" in page.text_content("p.error")
    page.fill("#token", demo.token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{demo.base_url}/ui/timeline")
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    session = cookies["khs_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert demo.token not in session["value"]
    context.close()


def test_the_overview_shows_fires_processes_and_its_chart(page: Watched, demo: Demo) -> None:
    deadline = time.monotonic() + 20
    while True:  # the heartbeats are written every 5 s: the first claim shows within that
        page.page.goto(f"{demo.base_url}/ui")
        processes = page.page.text_content("#processes")
        if "never" not in processes or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert "never" not in processes  # each has claimed or received by now
    assert "dispatcher" in processes
    assert "executor" in processes
    assert "silent" not in processes
    page.page.wait_for_selector("#fires-chart canvas")
    assert int(page.page.text_content("#fires tbody tr:first-child td")) >= 1
    page.shot("overview")


def test_the_demo_lane_gains_a_mark_while_the_page_is_open(page: Watched, demo: Demo) -> None:
    page.page.goto(f"{demo.base_url}/ui/timeline?window=15m")
    lane = lane_of(page.page, DEMO_NAME)
    before = int(lane.get_attribute("data-occurrences"))
    schedule_id = lane.get_attribute("data-schedule")
    page.page.wait_for_function(
        '([id, before]) => Number(document.querySelector(`g.lane[data-schedule="${id}"]`)'
        ".getAttribute('data-occurrences')) > before",
        arg=[schedule_id, before],
        timeout=20_000,
    )
    assert page.page.query_selector(f'g.lane[data-schedule="{schedule_id}"] rect.v-succeeded')
    assert page.page.query_selector(f'g.lane[data-schedule="{schedule_id}"] rect.planned')
    assert "live, updated" in page.page.text_content("#timeline-status")
    page.shot("timeline")


def test_pause_from_the_schedule_page_and_the_timeline_shows_the_skips(
    page: Watched, demo: Demo
) -> None:
    schedule_id = demo.create_schedule("Nightly export (paused in the test)")
    browser_page = page.page
    browser_page.goto(f"{demo.base_url}/ui/schedules/{schedule_id}")
    assert browser_page.text_content("#expression") == "*/5 * * * * *"
    assert len(browser_page.query_selector_all("#fires tbody tr")) == 10
    browser_page.fill("input[name=note]", "KeeperHub upgrade")
    browser_page.click("button[value=pause]")
    assert "until it is resumed" in browser_page.text_content("#confirm")
    assert demo.schedule(schedule_id)["paused"] is False  # asked, not done yet
    browser_page.click("#confirm-button")
    assert browser_page.text_content("p.notice") == "Paused."
    assert browser_page.text_content("#pause-note") == "KeeperHub upgrade"
    assert demo.schedule(schedule_id)["paused_note"] == "KeeperHub upgrade"
    page.shot("schedule-paused")

    browser_page.goto(f"{demo.base_url}/ui/timeline?window=15m&state=paused")
    lane = lane_of(browser_page, "Nightly export (paused in the test)")
    assert lane.get_attribute("class") == "lane paused"
    browser_page.wait_for_function(
        "id => [...document.querySelectorAll(`g.lane[data-schedule='${id}'] rect`)]"
        ".some(mark => mark.dataset.verdict === 'skipped'"
        " && mark.querySelector('title').textContent.includes('(paused)'))",
        arg=schedule_id,
        timeout=20_000,
    )
    page.shot("timeline-paused")


def test_run_now_then_open_the_run(page: Watched, demo: Demo) -> None:
    schedule_id = demo.create_schedule("Report on demand", cron="0 3 * * *")
    browser_page = page.page
    browser_page.goto(f"{demo.base_url}/ui/schedules/{schedule_id}")
    browser_page.fill("input[name=reason]", "checking the fix")
    browser_page.click("text=Run now…")
    assert "outside its schedule" in browser_page.text_content("#confirm")
    browser_page.click("#confirm-button")
    browser_page.wait_for_url(f"{demo.base_url}/ui/runs/*")
    run_id = browser_page.url.rsplit("/", 1)[1]
    assert browser_page.text_content("#execution-id") == run_id
    browser_page.wait_for_function(  # the page follows the run until it is finished
        "() => document.querySelector('#status').textContent === 'succeeded'", timeout=20_000
    )
    assert browser_page.text_content("#http-status") == "HTTP 200"
    assert "checking the fix" in browser_page.content()
    page.shot("run")


def test_a_workflow_name_with_markup_is_shown_as_text(page: Watched, demo: Demo) -> None:
    schedule_id = demo.create_schedule(XSS_NAME, cron="0 4 * * *")
    browser_page = page.page
    browser_page.goto(f"{demo.base_url}/ui/schedules/{schedule_id}")
    assert browser_page.text_content("h1").startswith(XSS_NAME)
    browser_page.goto(f"{demo.base_url}/ui/timeline?workflow=__xss")
    lane = lane_of(browser_page, "")
    assert lane.query_selector("title").text_content().startswith(XSS_NAME)
    assert browser_page.query_selector("img") is None
    assert browser_page.evaluate("() => window.__xss") is None
    page.shot("escaped-name")


def test_an_action_without_the_csrf_token_is_refused(page: Watched, demo: Demo) -> None:
    schedule_id = demo.create_schedule("Not to be paused", cron="0 5 * * *")
    browser_page = page.page
    browser_page.goto(f"{demo.base_url}/ui/schedules/{schedule_id}")
    action = f"{demo.base_url}/ui/schedules/{schedule_id}/pause"
    refused = browser_page.request.post(  # the browser's own cookies, no token
        action, form={"confirmed": "1", "note": "forged"}, max_redirects=0
    )
    assert refused.status == 403
    assert "did not carry this session" in refused.text()
    assert demo.schedule(schedule_id)["paused"] is False
    token = browser_page.get_attribute("input[name=csrf]", "value")
    accepted = browser_page.request.post(
        action, form={"confirmed": "1", "csrf": token}, max_redirects=0
    )
    assert accepted.status == 303
    assert demo.schedule(schedule_id)["paused"] is True
