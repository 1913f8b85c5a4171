#!/usr/bin/env bash
# The whole test suite, from a fresh clone: venv, cron-parser, LocalStack, lint, types, then pytest.
# PostgreSQL must answer on 127.0.0.1:5432 (or TEST_DATABASE_ADMIN_URL); the tests create and drop
# their own throwaway databases. cron-parser (for the differential test) comes from the npm
# registry into .cache/, and needs Node.js and npm. LocalStack is started here if it is not up, and
# stopped again (by the PID we started) when the run ends. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/cron-parser.sh
export PATH="$HOME/.local/bin:$PATH"

export TEST_DATABASE_ADMIN_URL="${TEST_DATABASE_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
uv run --frozen python - "$TEST_DATABASE_ADMIN_URL" <<'PY'
import sys
import psycopg
try:
    psycopg.connect(sys.argv[1], connect_timeout=5).close()
except psycopg.Error as error:
    sys.exit(
        f"PostgreSQL is not reachable at TEST_DATABASE_ADMIN_URL ({error}).\n"
        "Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    )
PY

scripts/chromium.sh  # the status page's browser tests drive Debian's Chromium

started_localstack=""
cleanup() {
  if [ -n "$started_localstack" ]; then
    scripts/localstack.sh stop
  fi
}
trap cleanup EXIT
if [ "$(scripts/localstack.sh start)" = "started" ]; then
  started_localstack=1
fi
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}"

uv run --frozen ruff check .
uv run --frozen ruff format --check .
# mypy (CPU) runs beside pytest (mostly waiting on clocks, processes and servers); its verdict is
# printed and counted after pytest's. Its incremental cache lives in .cache/ (ignored by git).
mypy_log="$(mktemp)"
uv run --frozen mypy --cache-dir .cache/mypy >"$mypy_log" 2>&1 &
mypy_pid=$!
# Two pytest-xdist workers, a test file to a worker (module fixtures such as the browser are made
# once): the tests wait on wall clocks far more than they compute, so two overlap well even on two
# cores. Every test has its own databases, queues and ports. The files run in the order
# tests/conftest.py gives (the long ones first; xdist would otherwise put the files with the most
# tests first, and a long file last). PYTEST_WORKERS=0 runs them in one process.
pytest_status=0
uv run --frozen pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@" || pytest_status=$?
mypy_status=0
wait "$mypy_pid" || mypy_status=$?
cat "$mypy_log"
rm -f "$mypy_log"
if [ "$pytest_status" -ne 0 ] || [ "$mypy_status" -ne 0 ]; then
  exit 1
fi

# --- the image: built and run with podman (scripts/test-image.sh); only with the whole suite -------
if [ $# -eq 0 ]; then
  scripts/test-image.sh --if-able
fi
