#!/usr/bin/env bash
# `make test-image`: build the scheduler image from the Dockerfile with podman and run tests/image
# against it (real PostgreSQL, LocalStack and the KeeperHub stand-in; see tests/image/conftest.py).
#
#   scripts/test-image.sh [pytest arguments]
#   scripts/test-image.sh --if-able [...]   where podman cannot run here, print one line that says
#                                           why and exit 0 (what `make test` does)
#
# No registry and no Docker daemon: the Dockerfile's base is replaced (ARG BASE_IMAGE) by a local
# stand-in for python:3.11-slim-bookworm, built once with mmdebstrap from Debian's mirror and kept
# under .cache/image. podman's settings and storage are private to this checkout (CONTAINERS_CONF,
# CONTAINERS_STORAGE_CONF under .cache/image/podman): nothing system-wide is configured.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
started=$SECONDS

if_able=""
if [ "${1:-}" = "--if-able" ]; then
  if_able=1
  shift
fi

CACHE="$ROOT/.cache/image"
PODMAN_DIR="$CACHE/podman"
IMAGE="localhost/keeperhub-scheduler:test"
PACKAGES=(podman runc mmdebstrap)

say() { echo "test-image: $*"; }

unable() {
  if [ -n "$if_able" ]; then
    say "skipped: $1"
    exit 0
  fi
  say "cannot run: $1" >&2
  exit 1
}

install_packages() {
  local missing=()
  for package in "${PACKAGES[@]}"; do
    command -v "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null 2>&1 || unable "${missing[*]} missing, and no apt-get to install them"
  mkdir -p "$CACHE"
  say "installing ${PACKAGES[*]} with apt-get"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "${PACKAGES[@]}"; } >"$CACHE/apt.log" 2>&1; then
    unable "apt-get install ${PACKAGES[*]} failed (last line: $(tail -1 "$CACHE/apt.log"))"
  fi
}

# podman settings of our own: runc (crun refuses this machine's hybrid cgroups), cgroupfs (no
# systemd), ulimits within the host's hard limits (podman's default nofile is above them), events
# in a file, and storage, run state and network configuration under .cache/image/podman.
configure_podman() {
  local nofile nproc
  nofile="$(ulimit -Hn)"
  nproc="$(ulimit -Hu)"
  [ "$nofile" = unlimited ] && nofile=1048576
  [ "$nproc" = unlimited ] && nproc=32768
  [ "$nproc" -gt 32768 ] && nproc=32768
  mkdir -p "$PODMAN_DIR"/{storage,run,tmp,networks}
  # Run state from before a reboot describes containers that no longer exist: start afresh.
  local boot
  boot="$(cat /proc/sys/kernel/random/boot_id)"
  if [ "$(cat "$PODMAN_DIR/boot_id" 2>/dev/null)" != "$boot" ]; then
    rm -rf "$PODMAN_DIR/run" "$PODMAN_DIR/tmp"
    mkdir -p "$PODMAN_DIR/run" "$PODMAN_DIR/tmp"
    echo "$boot" >"$PODMAN_DIR/boot_id"
  fi
  cat >"$PODMAN_DIR/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PODMAN_DIR/events.log"
tmp_dir = "$PODMAN_DIR/tmp"

[network]
network_config_dir = "$PODMAN_DIR/networks"
EOF
  cat >"$PODMAN_DIR/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$PODMAN_DIR/storage"
runroot = "$PODMAN_DIR/run"
EOF
  export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
  export CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf"
  podman info >"$CACHE/podman-info.log" 2>&1 || unable "podman does not start here (see $CACHE/podman-info.log)"
}

# The base stand-in (scripts/image-base.sh), rebuilt when its recipe or this machine's CAs change.
ensure_base() {
  local key
  key="$(cat scripts/image-base.sh /etc/ssl/certs/ca-certificates.crt | sha256sum | cut -c1-12)"
  BASE_IMAGE="localhost/keeperhub-scheduler-base:$key"
  if podman image exists "$BASE_IMAGE"; then
    return
  fi
  local tar="$CACHE/base-$key.tar"
  if [ ! -f "$tar" ]; then
    say "building the base stand-in with mmdebstrap (once; kept in $tar)"
    rm -f "$CACHE"/base-*.tar
    if ! scripts/image-base.sh "$tar.partial" >"$CACHE/base.log" 2>&1; then
      tail -20 "$CACHE/base.log" >&2
      say "could not build the base stand-in; the whole log is $CACHE/base.log" >&2
      exit 1
    fi
    mv "$tar.partial" "$tar"
  fi
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$tar" "$BASE_IMAGE" >/dev/null
}

build_image() {
  # --network host: the build's RUN steps reach PyPI as this machine does, with no bridge (and no
  # firewall rules) set up for them. --format docker keeps the HEALTHCHECK.
  if ! podman build --pull=never --force-rm --format docker --network host --target scheduler \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --tag "$IMAGE" . >"$CACHE/build.log" 2>&1; then
    tail -30 "$CACHE/build.log" >&2
    say "podman build failed; the whole log is $CACHE/build.log" >&2
    exit 1
  fi
  # Old layers of earlier builds; the build cache of the last day stays.
  podman image prune --force --filter until=24h >/dev/null 2>&1 || true
}

megabytes() { echo $(( ($(podman image inspect --format '{{.Size}}' "$1") + 500000) / 1000000 )); }

[ "$(id -u)" = 0 ] || unable "podman runs as root here (rootless podman needs subordinate ids this machine does not set up)"
install_packages
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9
configure_podman
# Containers a killed run left behind (this storage is ours alone).
podman rm --all --force --time 0 >/dev/null 2>&1 || true

mark=$SECONDS
ensure_base
base_seconds=$((SECONDS - mark))
mark=$SECONDS
build_image
build_seconds=$((SECONDS - mark))
say "built $IMAGE in ${build_seconds} s (base stand-in ${base_seconds} s)"
say "image size $(megabytes "$IMAGE") MB: base stand-in $(megabytes "$BASE_IMAGE") MB, the layers of the Dockerfile $(($(megabytes "$IMAGE") - $(megabytes "$BASE_IMAGE"))) MB"

scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"
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
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://${LOCALSTACK_LISTEN:-127.0.0.1:4566}}"

mark=$SECONDS
status=0
KHS_IMAGE="$IMAGE" uv run --frozen pytest tests/image -v -p no:cacheprovider "$@" || status=$?
say "checks took $((SECONDS - mark)) s; make test-image took $((SECONDS - started)) s in all"
if [ "$status" -ne 0 ]; then exit "$status"; fi
