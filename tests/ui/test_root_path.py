"""``keeperhub-scheduler api --root-path``: behind a proxy that serves the API under a prefix
and strips it, as a Kubernetes Ingress rewrite does, the page's links carry the prefix."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.management.world import TOKEN
from tests.support.processes import environment, kill, run, spawn
from tests.support.standin import free_port


def test_the_api_serves_the_page_under_the_prefix_a_proxy_strips(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = environment(database_url, SCHEDULER_API_TOKENS=TOKEN, SCHEDULER_API_PORT=str(port))
    process = spawn(["api", "--root-path", "/scheduler/"], env, tmp_path / "api.log")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # What the proxy forwards for /scheduler/ui/login: the path without its prefix.
                answer = httpx.get(f"http://127.0.0.1:{port}/ui/login", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()
                time.sleep(0.1)
        assert answer.status_code == 200
        assert 'action="/scheduler/ui/login"' in answer.text
        assert 'href="/scheduler/ui/static/app.css"' in answer.text
        assert "Path=/scheduler/ui" in answer.headers["set-cookie"]
        page = httpx.get(f"http://127.0.0.1:{port}/ui", timeout=5)
        assert page.headers["location"] == "/scheduler/ui/login?next=%2F"
    finally:
        kill(process)


def test_a_root_path_that_is_not_a_path_is_refused(database_url: str) -> None:
    env = environment(database_url, SCHEDULER_API_TOKENS=TOKEN)
    result = run(["api", "--root-path", "scheduler?x=1"], env, timeout=60)
    assert result.returncode == 2
    assert "--root-path 'scheduler?x=1': give a path such as /scheduler" in result.stderr
