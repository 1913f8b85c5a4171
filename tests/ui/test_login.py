"""Who may see the status page and change things through it: the login form, the session cookie,
one-time login links, the CSRF token on every action, and the path prefix of a proxy."""

from __future__ import annotations

import re
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.ui.session import SESSION_COOKIE, LoginCodes, SessionKeys
from tests.management.world import TOKEN, schedule_columns
from tests.ui.world import hidden, log_in, new_schedule, page_client


async def test_pages_and_data_need_a_login(engine: AsyncEngine, database_url: str) -> None:
    schedule_id = await new_schedule(engine)
    async with page_client(engine, database_url) as client:
        for path in ("/ui", f"/ui/schedules/{schedule_id}", "/ui/timeline?window=24h"):
            answer = await client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/ui/login?next=%2F")
        assert (await client.get("/ui/timeline.json")).status_code == 401
        posted = await client.post(
            f"/ui/schedules/{schedule_id}/pause", data={"confirmed": "1", "note": "x"}
        )
        assert posted.status_code == 401
        assert (await client.get("/ui/login")).status_code == 200
        assert (await client.get("/ui/static/app.css")).status_code == 200
    assert (await schedule_columns(engine, schedule_id))["paused_at"] is None


async def test_the_login_sets_a_signed_httponly_strict_cookie_that_is_not_the_token(
    engine: AsyncEngine, database_url: str
) -> None:
    async with page_client(engine, database_url) as client:
        form = await client.get("/ui/login?next=/timeline%3Fwindow%3D24h")
        assert form.headers["set-cookie"].startswith("khs_login=")
        answer = await client.post(
            "/ui/login",
            data={"token": TOKEN, "guard": hidden(form.text, "guard"),
                  "next": hidden(form.text, "next")},
        )  # fmt: skip
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/timeline?window=24h"
        cookie = next(
            value for value in answer.headers.get_list("set-cookie")
            if value.startswith(f"{SESSION_COOKIE}=")
        )  # fmt: skip
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "path", "max-age"} <= attributes
        assert "samesite=strict" in cookie.lower()
        assert "path=/ui" in cookie.lower()
        assert "secure" not in attributes  # plain http here; https would add it
        assert TOKEN not in cookie
        assert (await client.get("/ui")).status_code == 200


async def test_the_login_form_refuses_a_wrong_token_and_a_post_without_its_guard(
    engine: AsyncEngine, database_url: str
) -> None:
    async with page_client(engine, database_url) as client:
        form = await client.get("/ui/login")
        wrong = await client.post(
            "/ui/login", data={"token": "not-it", "guard": hidden(form.text, "guard")}
        )
        assert wrong.status_code == 401
        assert "not one of the API&#39;s tokens" in wrong.text
        assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
        client.cookies.clear()  # a cross-site form: no guard cookie of ours
        forged = await client.post("/ui/login", data={"token": TOKEN, "guard": "guess"})
        assert forged.status_code == 403
        assert (await client.get("/ui")).status_code == 303


async def test_a_cookie_forged_expired_or_of_a_removed_token_opens_nothing() -> None:
    keys = SessionKeys(("first-token", "second-token"))
    cookie = keys.mint("second-token")
    assert cookie is not None
    assert keys.mint("third-token") is None
    session = keys.open(cookie)
    assert session is not None
    expires, nonce, mac = cookie.split(".")
    assert keys.open(f"{expires}.{nonce}.{mac[:-2]}xx") is None  # forged signature
    assert keys.open(f"{int(expires) + 3600}.{nonce}.{mac}") is None  # a later expiry
    assert keys.open(cookie, now=int(expires) + 1) is None  # expired
    assert SessionKeys(("first-token",)).open(cookie) is None  # its token was removed
    assert SessionKeys(("first-token", "second-token")).open(cookie) == session  # any replica


async def test_a_one_time_link_logs_in_once(engine: AsyncEngine, database_url: str) -> None:
    codes = LoginCodes()
    code = codes.issue(TOKEN)
    async with page_client(engine, database_url, codes=codes) as client:
        first = await client.get(f"/ui/login/once?code={code}")
        assert first.status_code == 303
        assert first.headers["location"] == "/ui/"
        assert (await client.get("/ui")).status_code == 200
        client.cookies.clear()
        again = await client.get(f"/ui/login/once?code={code}")
        assert again.status_code == 401
        assert "used already or has expired" in again.text
        assert (await client.get("/ui")).status_code == 303
    short = LoginCodes(lifetime=0.05)
    expired = short.issue(TOKEN)
    time.sleep(0.1)
    assert short.redeem(expired) is None


async def test_an_action_needs_this_sessions_csrf_token(
    engine: AsyncEngine, database_url: str
) -> None:
    schedule_id = await new_schedule(engine)
    action = f"/ui/schedules/{schedule_id}/pause"
    async with (
        page_client(engine, database_url) as client,
        page_client(engine, database_url) as other,
    ):
        csrf = await log_in(client)
        others_csrf = await log_in(other)
        assert csrf != others_csrf
        for given in ({}, {"csrf": ""}, {"csrf": others_csrf}, {"csrf": csrf[:-1]}):
            refused = await client.post(action, data={"confirmed": "1", "note": "x"} | given)
            assert refused.status_code == 403, given
            assert "did not carry this session" in refused.text
        assert (await schedule_columns(engine, schedule_id))["paused_at"] is None

        asked = await client.post(action, data={"csrf": csrf, "note": "deploy"})
        assert asked.status_code == 200  # the confirmation page: nothing done yet
        assert "Confirm" in asked.text
        assert (await schedule_columns(engine, schedule_id))["paused_at"] is None
        done = await client.post(action, data={"csrf": csrf, "note": "deploy", "confirmed": "1"})
        assert done.status_code == 303
        assert done.headers["location"] == f"/ui/schedules/{schedule_id}?done=paused"
    columns = await schedule_columns(engine, schedule_id)
    assert columns["paused_at"] is not None
    assert columns["paused_note"] == "deploy"


async def test_a_bearer_token_reads_and_acts_without_a_cookie(
    engine: AsyncEngine, database_url: str
) -> None:
    schedule_id = await new_schedule(engine)
    async with page_client(engine, database_url) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/ui", headers=auth)).status_code == 200
        assert (await client.get("/ui/timeline.json", headers=auth)).status_code == 200
        wrong = await client.get("/ui/timeline.json", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        done = await client.post(
            f"/ui/schedules/{schedule_id}/pause", data={"confirmed": "1"}, headers=auth
        )
        assert done.status_code == 303
    assert (await schedule_columns(engine, schedule_id))["paused_at"] is not None


async def test_behind_a_path_prefix_every_link_form_redirect_and_cookie_carries_it(
    engine: AsyncEngine, database_url: str
) -> None:
    schedule_id = await new_schedule(engine)
    prefix = "/scheduler"
    async with page_client(engine, database_url, root_path=prefix) as client:
        first = await client.get(f"{prefix}/ui/timeline")
        assert first.headers["location"] == f"{prefix}/ui/login?next=%2Ftimeline"
        form = await client.get(f"{prefix}/ui/login")
        assert f'action="{prefix}/ui/login"' in form.text
        assert f'href="{prefix}/ui/static/app.css"' in form.text
        answer = await client.post(
            f"{prefix}/ui/login", data={"token": TOKEN, "guard": hidden(form.text, "guard")}
        )
        assert answer.headers["location"] == f"{prefix}/ui/"
        assert f"Path={prefix}/ui" in answer.headers["set-cookie"]
        page = await client.get(f"{prefix}/ui/schedules/{schedule_id}")
        assert page.status_code == 200
        links = re.findall(r'(?:href|action|src)="(/[^"]*)"', page.text)
        assert links
        assert all(link.startswith(f"{prefix}/ui") for link in links), links
        timeline = await client.get(f"{prefix}/ui/timeline")
        assert f'data-source="{prefix}/ui/timeline.json?' in timeline.text
