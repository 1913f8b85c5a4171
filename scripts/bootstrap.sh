#!/usr/bin/env bash
# Make the project runnable on a fresh machine: uv (from PyPI if absent) and the locked venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  if [ -x "$HOME/.local/bin/uv" ]; then
    export PATH="$HOME/.local/bin:$PATH"
  else
    echo "bootstrap: installing uv from PyPI" >&2
    python3 -m pip install --quiet --user uv
    export PATH="$HOME/.local/bin:$PATH"
  fi
fi
uv sync --frozen --quiet
