#!/usr/bin/env bash
# LocalStack (SQS only), run natively from PyPI in its own venv: its pins clash with ours.
#   scripts/localstack.sh install   create .cache/localstack/venv with the known-good pins
#   scripts/localstack.sh start     install if needed (always: tests start private instances too),
#                                   start on 127.0.0.1:4566 unless already up,
#                                   wait for /_localstack/health; prints "started" or "running"
#   scripts/localstack.sh stop      stop the instance this script started (by its PID file)
#   scripts/localstack.sh status    exit 0 when the health endpoint answers
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT="$(pwd)/.cache/localstack"
VENV="$ROOT/venv"
PIDFILE="$ROOT/localstack.pid"
LOG="$ROOT/localstack.log"
HOST_PORT="${LOCALSTACK_LISTEN:-127.0.0.1:4566}"
HEALTH="http://$HOST_PORT/_localstack/health"
PINS=(
  "localstack-core[runtime]==4.9.2" "cbor2==5.6.5" "cryptography==43.0.3"
  "pyopenssl==24.2.1" "service_identity==24.1.0"
)

healthy() {
  python3 - "$HEALTH" <<'PY'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as answer:
        services = json.load(answer).get("services", {})
    sys.exit(0 if services.get("sqs") in ("available", "running") else 1)
except Exception:
    sys.exit(1)
PY
}

install() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import localstack" 2>/dev/null; then
    return
  fi
  echo "localstack: installing ${PINS[0]} into $VENV" >&2
  mkdir -p "$ROOT"
  uv venv --quiet --python 3.11 "$VENV"
  uv pip install --quiet --python "$VENV/bin/python" "${PINS[@]}"
}

start() {
  # Installed even when a LocalStack already answers: the fault tests start private instances
  # of their own from this venv.
  install
  if healthy; then
    echo "running"
    return
  fi
  mkdir -p "$ROOT/data"
  # LocalStack writes its cache and state under this folder instead of /var/lib/localstack.
  SERVICES=sqs GATEWAY_LISTEN="$HOST_PORT" LOCALSTACK_VOLUME_DIR="$ROOT/data" \
    SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
    nohup "$VENV/bin/python" -m localstack.runtime.main >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 120); do
    if healthy; then
      echo "started"
      return
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "localstack: exited during start; last lines of $LOG:" >&2
      tail -20 "$LOG" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "localstack: no answer from $HEALTH after 60 s; see $LOG" >&2
  exit 1
}

stop() {
  [ -f "$PIDFILE" ] || return 0
  pid="$(cat "$PIDFILE")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) healthy ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
