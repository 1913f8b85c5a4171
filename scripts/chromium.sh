#!/usr/bin/env bash
# Debian's Chromium, for the status page's browser tests (tests/ui): installed when missing,
# quick when present, and a loud failure (never a skip) when it cannot be installed.
# Playwright drives this system browser; `playwright install` is never run (no browser downloads).
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
echo "chromium: $CHROMIUM is missing; installing Debian's chromium package" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
if ! { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium; } >&2; then
  echo "error: could not install chromium (apt-get install -y chromium); the browser tests need it" >&2
  exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "error: chromium was installed but $CHROMIUM is not there; set CHROMIUM to its path" >&2
  exit 1
fi
