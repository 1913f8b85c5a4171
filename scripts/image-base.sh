#!/usr/bin/env bash
# A local stand-in for the Dockerfile's base, python:3.11-slim-bookworm, as a root filesystem tar
# for `podman import` (scripts/test-image.sh keeps it under .cache/image; there is no registry here).
#
#   scripts/image-base.sh OUT.tar
#
# Debian bookworm (minbase) from Debian's mirror with mmdebstrap, as root, plus:
# - Python 3.11 where the official image keeps it: /usr/local/bin/python3.11, python3, python;
# - pip, setuptools and wheel from PyPI in /usr/local, so that the Dockerfile's `pip uninstall`
#   really removes them (and no PEP 668 marker, as the official image has none);
# - this machine's CA bundle, a pip.conf that names it and a uv.toml that makes uv use it: by
#   default both verify with a bundle of their own, which does not hold the CA of a TLS-intercepting
#   proxy; with these, the build's pip and uv reach PyPI as this machine does.
# Documentation, manual pages and translations are left out, as in Debian's slim images.
set -euo pipefail

PINS=(pip==24.0 setuptools==65.5.1 wheel==0.45.1)
MIRROR=http://deb.debian.org/debian
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

# Run by mmdebstrap's customize hook: $1 the new root, $2 the folder of wheels.
customize() {
  local root="$1" wheels="$2"
  for name in python3.11 python3 python; do
    ln -s /usr/bin/python3.11 "$root/usr/local/bin/$name"
  done
  rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
  cp "$CA_BUNDLE" "$root$CA_BUNDLE"
  printf '[global]\ncert = %s\n' "$CA_BUNDLE" >"$root/etc/pip.conf"
  mkdir "$root/etc/uv"
  printf 'system-certs = true\n' >"$root/etc/uv/uv.toml"
  mkdir "$root/tmp/wheels"
  cp "$wheels"/*.whl "$root/tmp/wheels/"
  local pip_wheel
  pip_wheel="$(basename "$(ls "$wheels"/pip-*.whl)")"
  chroot "$root" env -i PATH=/usr/local/bin:/usr/bin:/bin \
    python3 "/tmp/wheels/$pip_wheel/pip" install --quiet --no-index --no-cache-dir \
    --root-user-action=ignore --find-links /tmp/wheels "${PINS[@]}"
  rm -rf "$root/tmp/wheels"
}

build() {
  local out="$1" wheels
  wheels="$(mktemp -d)"
  trap 'rm -rf "$wheels"' RETURN
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" "${PINS[@]}"
  mmdebstrap --quiet --variant=minbase --mode=root --format=tar --include=python3,ca-certificates \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="\"$SELF\" customize \"\$1\" \"$wheels\"" \
    bookworm "$out" "$MIRROR"
}

case "${1:-}" in
  customize) customize "$2" "$3" ;;
  "" | -*) echo "usage: $0 OUT.tar" >&2; exit 2 ;;
  *) build "$1" ;;
esac
