#!/usr/bin/env bash
# Install cron-parser, at the version pinned in tests/cron/cron_parser/package-lock.json, into
# .cache/cron-parser for the differential test (tests/cron/test_cron_parser_parity.py). KeeperHub
# validates schedules with cron-parser 5, so our engine is compared with the real library.
# Idempotent: a second run with the same lockfile does nothing. Fails (never skips) without Node.
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=tests/cron/cron_parser
target=.cache/cron-parser

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "cron-parser.sh: '$tool' is not installed; the differential test against cron-parser" \
      "needs Node.js 18 or newer and npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
done
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'; then
  echo "cron-parser.sh: Node.js $(node --version) is too old; cron-parser 5 needs 18 or newer" >&2
  exit 1
fi

stamp="$target/installed.lock.json"
if cmp -s "$source_dir/package-lock.json" "$stamp" \
  && [ -f "$target/node_modules/cron-parser/package.json" ]; then
  exit 0
fi
mkdir -p "$target"
rm -f "$stamp"
cp "$source_dir/package.json" "$source_dir/package-lock.json" "$target/"
(cd "$target" && npm ci --no-audit --no-fund --loglevel=error)
cp "$source_dir/package-lock.json" "$stamp"
echo "cron-parser.sh: installed cron-parser $(node -p "require('./$target/node_modules/cron-parser/package.json').version") into $target" >&2
