#!/usr/bin/env bash
# Set up everything LK Console needs on a fresh Debian/Ubuntu machine, idempotently:
#   bash packaging/bootstrap.sh          runtime: Qt's system libraries, .venv, the package
#   bash packaging/bootstrap.sh --cluster  also: the cluster stack for the Pacemaker lab
#                                        (pacemaker, corosync, crmsh, resource-agents,
#                                        fence-agents, openssh, iproute2, ...), not started,
#                                        and the mirror over NBD (nbdkit, libnbd, fuse3)
#   bash packaging/bootstrap.sh --test   all of --cluster, and: xvfb, xauth, btrfs-progs,
#                                        e2fsprogs, desktop-file-utils, appstream, the test extras
# Takes seconds when everything is already there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

mode=run
case "${1:-}" in
  "") ;;
  --test) mode=test ;;
  --cluster) mode=cluster ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  *) echo "bootstrap.sh: unknown option $1 (use --test, --cluster or nothing)" >&2; exit 2 ;;
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
# The Pacemaker lab (core/backends/pacemaker/nslab.py): the stack, and what builds the nodes;
# libxml2-utils: xmllint, which ocf-tester checks an agent's meta-data with; kmod:
# modprobe, which ocf:heartbeat:Filesystem insists on finding.
cluster_pkgs=(
  pacemaker pacemaker-cli-utils corosync crmsh resource-agents fence-agents
  openssh-server openssh-client iproute2 iputils-ping psmisc procps util-linux
  libxml2-utils kmod
)
# The mirror between nodes over NBD (core/replication/nbd*.py, tests/core/replication/
# test_nbd*.py, benchmarks/nbd_*.py): nbdkit and its Python plugin, libnbd's tools
# (nbdcopy, nbdinfo, nbdfuse) and its bindings for the system python3 (no pip package
# has them), FUSE.
nbd_pkgs=(nbdkit nbdkit-plugin-python libnbd-bin python3-libnbd fuse3 iproute2 e2fsprogs)
# Daemons of the stack: none may be left running on the host by the install.
cluster_daemons=(corosync pacemakerd pacemaker-based pacemaker-fenced pacemaker-execd
  pacemaker-attrd pacemaker-schedulerd pacemaker-controld sshd)

pkgs=("${runtime_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")
[ "$mode" = test ] || [ "$mode" = cluster ] && pkgs+=("${cluster_pkgs[@]}" "${nbd_pkgs[@]}")

# PIDs of the stack's daemons running on the host now: in the host's own network
# namespace, so a Pacemaker lab's nodes (each in a namespace of its own) are never counted.
daemon_pids() {
  local pid comm d host_net
  host_net=$(readlink /proc/self/ns/net)
  for pid in /proc/[0-9]*; do
    comm=$(cat "$pid/comm" 2>/dev/null) || continue
    [ "$(readlink "$pid/ns/net" 2>/dev/null)" = "$host_net" ] || continue
    for d in "${cluster_daemons[@]}"; do
      # /proc/PID/comm holds at most 15 characters
      [ "$comm" = "${d:0:15}" ] && echo "${pid#/proc/}"
    done
  done
  return 0
}

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
    before=" $(daemon_pids | tr '\n' ' ') "
    # Packages must not start their services (Debian asks /usr/sbin/policy-rc.d first):
    # where there is none, one that says no, for the time of the install.
    own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
      $sudo chmod 755 /usr/sbin/policy-rc.d
      own_policy=1
    fi
    status=0
    { $sudo apt-get update -qq && $sudo $line -qq; } || status=$?
    [ -n "$own_policy" ] && $sudo rm -f /usr/sbin/policy-rc.d
    [ "$status" -eq 0 ] || exit "$status"
    # Whatever of the stack the install started anyway: stopped, by PID, nothing else.
    for pid in $(daemon_pids); do
      case "$before" in *" $pid "*) continue ;; esac
      echo "bootstrap.sh: stopping $(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid), started by the install"
      $sudo kill "$pid" 2>/dev/null || true
    done
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
# The Python side of --cluster is the runtime's.
[ "$mode" = cluster ] && mode=run
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
