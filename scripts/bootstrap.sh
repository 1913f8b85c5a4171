#!/usr/bin/env bash
# Make the project runnable on a fresh machine: uv (from PyPI if absent) and the locked venv.
set -euo pipefail
cd "$(dirname "$0")/.."

install_uv() {
  echo "bootstrap: installing uv from PyPI" >&2
  # A user install where pip allows it; where the system Python is externally managed (PEP 668,
  # Debian's python3), uv goes into its own venv and is linked into ~/.local/bin all the same.
  if python3 -m pip install --quiet --user uv 2>/dev/null; then
    return
  fi
  local home="$HOME/.local/share/keeperhub-scheduler/uv"
  python3 -m venv "$home"
  "$home/bin/python" -m pip install --quiet uv
  mkdir -p "$HOME/.local/bin"
  ln -sf "$home/bin/uv" "$HOME/.local/bin/uv"
}

if ! command -v uv >/dev/null 2>&1; then
  if [ ! -x "$HOME/.local/bin/uv" ]; then
    install_uv
  fi
  export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --frozen --quiet
