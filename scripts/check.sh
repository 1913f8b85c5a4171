#!/usr/bin/env bash
# The fast loop (`make check`): lint, format, types, and the tests that need no server and do not
# wait on the clock or on processes they start (markers `server`, `slow` and `waits`). No
# PostgreSQL, LocalStack or browser is needed. `make test` runs everything, as CI does.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"

uv run --frozen ruff check .
uv run --frozen ruff format --check .
# mypy's incremental cache lives in .cache/ (ignored by git): a second run checks only what changed.
uv run --frozen mypy --cache-dir .cache/mypy
# Two xdist workers: what is left is CPU (parsing, hypothesis), which two cores share well.
uv run --frozen pytest -q -n "${PYTEST_WORKERS:-2}" -m "not server and not slow and not waits" "$@"
