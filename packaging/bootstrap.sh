#!/usr/bin/env bash
# Set up everything LK Console needs on a fresh Debian/Ubuntu machine, idempotently:
#   bash packaging/bootstrap.sh          runtime: Qt's system libraries, .venv, the package
#   bash packaging/bootstrap.sh --test   also: xvfb, xauth, btrfs-progs, e2fsprogs,
#                                        desktop-file-utils, appstream, the test extras,
#                                        nbdkit, libnbd (tools, python3-libnbd), fuse3
# Takes seconds when everything is already there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

mode=run
case "${1:-}" in
  "") ;;
  --test) mode=test ;;
  -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
  *) echo "bootstrap.sh: unknown option $1 (use --test or nothing)" >&2; exit 2 ;;
esac

# The libraries the PySide6 wheels load (the xcb platform plugin and its friends).
runtime_pkgs=(
  libgl1 libegl1 libopengl0 libx11-6 libx11-xcb1 libdbus-1-3 libfontconfig1 libfreetype6
  libglib2.0-0 libxkbcommon0 libxkbcommon-x11-0 libxrender1 libxi6 libsm6 libice6
  libxcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0
  libxcb-xinerama0 libxcb-xkb1 fonts-dejavu-core
)
test_pkgs=(xvfb xauth btrfs-progs e2fsprogs mount desktop-file-utils appstream)
# The mirror over NBD (tests/core/replication/test_nbd*.py, benchmarks/nbd_*.py): nbdkit
# and its Python plugin, libnbd's tools (nbdcopy, nbdinfo, nbdfuse) and its bindings for
# the system python3 (no pip package has them), FUSE, ip for the network namespaces.
nbd_test_pkgs=(nbdkit nbdkit-plugin-python libnbd-bin python3-libnbd fuse3 iproute2 e2fsprogs)

pkgs=("${runtime_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${nbd_test_pkgs[@]}")

if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${pkgs[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    line="apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then
      sudo=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo"
    else
      echo "bootstrap.sh: these system packages are missing; install them as root, then run me again:" >&2
      echo "  sudo apt-get update && sudo $line" >&2
      exit 1
    fi
    echo "bootstrap.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo $line -qq
  fi
else
  echo "bootstrap.sh: not a Debian-like system; make sure Qt 6's xcb libraries are installed" >&2
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi

# Reinstall only when the project's metadata or the mode changed.
extras=""
[ "$mode" = test ] && extras="[test]"
stamp=.venv/.lkconsole-bootstrap
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $mode"
have="$(cat "$stamp" 2>/dev/null || true)"
# A run stamp does not satisfy --test; a test stamp satisfies a plain run.
if [ "$have" != "$want" ] && ! { [ "$mode" = run ] && [ "$have" = "${want% run} test" ]; }; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extras}"
  echo "$want" > "$stamp"
fi
echo "bootstrap.sh: ready ($mode). Run: .venv/bin/lkconsole   Test: .venv/bin/pytest"
