"""The status page's render time on real data: 10,000 schedules and 1,000,000 runs.

PostgreSQL is seeded with generate_series (a week of history: 100 runs a schedule, one every 100
minutes, 90% succeeded, 4% failed, 1% dead, 5% skipped, the newest still pending; a tenth of the
schedules paused, ten parked; a heartbeat per process), VACUUM ANALYZEd, then each page is asked
for ``--repeat`` times through the API's own ASGI app (the handler, its queries, the template;
not the network), logged in with a bearer token. Each page's median and p95 are printed beside
two floors measured in the same run: ``/healthz`` (the app, no database, no template) and the
login form (a template, no database). Target: every page under 200 ms.

    flock /tmp/khs-bench.lock uv run python bench/ui.py                       # about 2 minutes
    flock /tmp/khs-bench.lock uv run python bench/ui.py --schedules 1000 --runs-per-schedule 100

PostgreSQL on 127.0.0.1:5432 (or TEST_DATABASE_ADMIN_URL) must be running. With ``--explain``,
the plans of the overview's and the timeline's queries are printed as well. Exit code 0 when
every page is under the target.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Database, clean_up_on_sigterm
from keeperhub_scheduler.api import create_app
from keeperhub_scheduler.config import load_settings
from keeperhub_scheduler.db.engine import create_engine
from keeperhub_scheduler.ui.timeline import LANES_PER_PAGE

TOKEN = "bench-token-0123456789"
TARGET_MS = 200.0

SEED = """
SET keeperhub_scheduler.writer = 'on';
INSERT INTO workflows (id, name, enabled)
SELECT 'wf_' || lpad(n::text, 5, '0'), 'workflow ' || lpad(n::text, 5, '0'), true
FROM generate_series(1, {schedules}) AS n;

INSERT INTO workflow_schedules (id, workflow_id, cron_expression, timezone, enabled, next_run_at,
    decided_through, plan_key, last_run_at, last_status, paused_at, paused_note, created_at,
    updated_at)
SELECT 'sch_' || lpad(n::text, 5, '0'), 'wf_' || lpad(n::text, 5, '0'),
    (ARRAY['*/5 * * * *', '0 * * * *', '30 2 * * *', '*/15 * * * *', '0 9 * * 1-5'])[n % 5 + 1],
    (ARRAY['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo'])[n % 4 + 1],
    true, now() + (n % 300) * interval '1 second', now(), NULL, now(),
    CASE WHEN n % 25 = 0 THEN 'error' ELSE 'success' END,
    CASE WHEN n % 10 = 0 THEN now() - interval '1 hour' END,
    CASE WHEN n % 10 = 0 THEN 'maintenance' END,
    now() - interval '30 days', now()
FROM generate_series(1, {schedules}) AS n;

UPDATE workflow_schedules SET cron_expression = '61 * * * *', next_run_at = NULL,
    last_status = 'error', last_error = 'invalid schedule: minute 61 is out of range 0-59'
WHERE id IN (SELECT id FROM workflow_schedules ORDER BY id LIMIT 10);

INSERT INTO schedule_runs (id, schedule_id, workflow_id, kind, scheduled_for, due_at, status,
    skip_reason, occurrences, attempts, created_at, enqueued_at, started_at, finished_at,
    http_status, error)
SELECT md5(s.n || '-' || r.k), 'sch_' || lpad(s.n::text, 5, '0'), 'wf_' || lpad(s.n::text, 5, '0'),
    'schedule', x.at, x.at, v.status,
    CASE WHEN v.status = 'skipped' THEN 'paused' END, 1,
    CASE WHEN v.status = 'dead' THEN 5 WHEN v.status = 'skipped' THEN 0 ELSE 1 END,
    x.at, x.at + interval '0.3 second',
    CASE WHEN v.status <> 'skipped' THEN x.at + (s.n % 20) * interval '0.05 second' END,
    CASE WHEN v.status NOT IN ('pending', 'enqueued') THEN x.at + interval '1 second' END,
    CASE v.status WHEN 'succeeded' THEN 200 WHEN 'failed' THEN 400 WHEN 'dead' THEN 503 END,
    CASE v.status WHEN 'failed' THEN 'HTTP 400: workflow input is invalid'
                  WHEN 'dead' THEN 'HTTP 503: upstream unavailable' END
FROM generate_series(1, {schedules}) AS s(n)
CROSS JOIN generate_series(1, {runs}) AS r(k)
CROSS JOIN LATERAL (
    SELECT now() - r.k * interval '100 minutes' + (s.n % 6000) * interval '1 second' AS at
) AS x
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN r.k = 1 AND s.n % 3 = 0 THEN 'pending'
        WHEN (s.n * 31 + r.k * 7) % 100 < 90 THEN 'succeeded'
        WHEN (s.n * 31 + r.k * 7) % 100 < 94 THEN 'failed'
        WHEN (s.n * 31 + r.k * 7) % 100 < 95 THEN 'dead'
        ELSE 'skipped' END AS status
) AS v;

INSERT INTO scheduler_heartbeats (process_id, role, host, pid, started_at, beat_at, last_work_at,
    max_silence_seconds)
SELECT role || '@bench:' || n, role, 'bench', n, now() - interval '1 hour', now(),
    now() - interval '2 seconds', 60
FROM generate_series(1, 3) AS n, unnest(ARRAY['dispatcher', 'executor']) AS role;
"""


def seed(database: Database, schedules: int, runs: int) -> float:
    began = time.monotonic()
    with database.connect() as connection:
        connection.execute(SEED.format(schedules=int(schedules), runs=int(runs)))  # type: ignore[arg-type]
        connection.execute("VACUUM ANALYZE")
        stored = connection.execute("SELECT count(*) FROM schedule_runs").fetchone()
    print(
        f"seeded {schedules:,} schedules and {stored[0]:,} runs in {time.monotonic() - began:.0f} s"
    )
    return time.monotonic() - began


def pages(schedules: int) -> list[tuple[str, str]]:
    middle = f"sch_{schedules // 2:05d}"
    half = max(1, schedules // LANES_PER_PAGE // 2)
    return [
        ("floor: /healthz (no database, no template)", "/healthz"),
        ("floor: login form (a template, no database)", "/ui/login"),
        ("overview", "/ui"),
        ("timeline page (filters, zones)", "/ui/timeline"),
        ("timeline data, 1 h, first 25 lanes", "/ui/timeline.json?window=1h"),
        ("timeline data, 24 h", "/ui/timeline.json?window=24h"),
        ("timeline data, 7 d", "/ui/timeline.json?window=7d"),
        (f"timeline data, 7 d, page {half}", f"/ui/timeline.json?window=7d&page={half}"),
        ("timeline data, 7 d, state=failing", "/ui/timeline.json?window=7d&state=failing"),
        ("timeline data, 24 h, workflow=0042", "/ui/timeline.json?window=24h&workflow=0042"),
        ("schedule page", f"/ui/schedules/{middle}"),
        ("run page", None),  # filled in: a run of that schedule
    ]


async def measure(url: str, schedules: int, repeat: int) -> list[tuple[str, float, float]]:
    settings = load_settings(database_url=url, scheduler_api_tokens=TOKEN, sqs_queue_url=None)
    engine = create_engine(url)
    app = create_app(settings, engine)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    results = []
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers=headers
    ) as client:
        middle = f"sch_{schedules // 2:05d}"
        run = (await client.get(f"/v1/schedules/{middle}")).json()["recent_runs"][0]["id"]
        for name, path in pages(schedules):
            target = path or f"/ui/runs/{run}"
            first = await client.get(target)
            assert first.status_code == 200, (target, first.status_code, first.text[:300])
            timings = []
            for _ in range(repeat):
                began = time.perf_counter()
                answer = await client.get(target)
                timings.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200
            timings.sort()
            p95 = timings[min(len(timings) - 1, round(0.95 * len(timings)) - 1)]
            results.append((name, statistics.median(timings), p95))
    await engine.dispose()
    return results


def explain(url: str) -> None:
    """The plans of the heaviest queries, as PostgreSQL runs them on this data."""
    import psycopg

    queries = {
        "fires of the last day by bucket and status": (
            "SELECT floor(extract(epoch from now() - scheduled_for) / 900), status, skip_reason,"
            " sum(coalesce(occurrences, 1)) FROM schedule_runs WHERE scheduled_for > now() -"
            " interval '1 day' AND scheduled_for <= now() GROUP BY 1, 2, 3"
        ),
        "newest dead runs": (
            "SELECT * FROM schedule_runs WHERE status = 'dead' AND finished_at IS NOT NULL"
            " ORDER BY finished_at DESC LIMIT 20"
        ),
        "one page of lanes' runs, 7 d": (
            "SELECT id, status FROM schedule_runs WHERE schedule_id IN (SELECT id FROM"
            " workflow_schedules ORDER BY id LIMIT 25) AND ((scheduled_for >= now() - interval"
            " '7 days' AND scheduled_for < now() + interval '1 day') OR (scheduled_until >= now()"
            " - interval '7 days' AND scheduled_for < now() - interval '7 days'))"
        ),
    }
    with psycopg.connect(url) as connection:
        for name, query in queries.items():
            plan = connection.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {query}").fetchall()
            print(f"\n-- {name}")
            for (line,) in plan:
                print(f"   {line}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--runs-per-schedule", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--explain", action="store_true")
    arguments = parser.parse_args()
    clean_up_on_sigterm()
    database = Database("bench_ui")
    try:
        seed(database, arguments.schedules, arguments.runs_per_schedule)
        results = asyncio.run(measure(database.url, arguments.schedules, arguments.repeat))
        if arguments.explain:
            explain(database.url)
    finally:
        database.drop()
    floor = results[1][1]
    print(f"\n{'page':<44} {'median':>9} {'p95':>9} {'x floor':>8}  target < {TARGET_MS:.0f} ms")
    slow = 0
    for name, median, p95 in results:
        mark = "" if name.startswith("floor") else ("ok" if p95 < TARGET_MS else "SLOW")
        slow += mark == "SLOW"
        print(f"{name:<44} {median:>6.1f} ms {p95:>6.1f} ms {median / floor:>7.1f}x  {mark}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
