"""The names a DataKeeper resource on Pacemaker is made of, shared by the node and the console.

A DataKeeper resource is a promotable clone of ``ocf:lkconsole:datakeeper``
(``packaging/ocf/lkconsole/datakeeper``): the Promoted instance is the mirror's source
(the engine, and the mirrored volume as a block device), each Unpromoted one a target
(its volume served over NBD with TLS). Pure: names, and parsing of the agent's
parameters. Both sides import it (the agent runs under the system ``python3``).

**Node attributes** of mirror ``RID`` (the primitive's id), on each node of the mirror:

- permanent (in the CIB's ``<nodes>``, kept across reboots): ``lkdr-RID-gen``, the
  generation of this node's copy: the source's is the highest, set when it is promoted
  (one more than any); a target's equals it once the source confirmed it in sync, and is
  lowered *before* the source acknowledges a write the target missed; a new mirror's
  first source is the node it is created on, whose copy the console makes generation 1
  (a new target's copy is 0: it has nothing yet). A node whose copy
  is older than the highest gets no promotion score: "Wait for Previous Source" until the
  holder of the highest returns, or the administrator forces this copy online
  (``lkdr-RID-forced``); ``lkdr-RID-paused``: the administrator paused the mirror to it;
- transient (``attrd_updater``, gone when the node leaves), written by the source for
  each target: ``lkdr-RID-state`` (TARGET, RESYNCING, OUT_OF_SYNC), ``-percent``,
  ``-rate`` (bytes/s), ``-eta`` (s), ``-reason``, ``-dirty`` (chunks), ``-verify``
  (percent while a verify runs); and by each target itself: ``lkdr-RID-serving`` (a
  token, new at each start: "my volume is served"), ``lkdr-RID-stale`` (chunk runs a
  former source may have written last, which the new source copies again);
- the promotion score, Pacemaker's ``master-RID`` (``crm_attribute --promotion``).

**On each node**: ``/opt/LifeKeeper/dk/RID/`` keeps the mirror's key (``psk``, 0600)
and the node's own record (``local.json``); ``/run/lkdr/RID/`` what runs now (the
engine's configuration, status and control socket, the target's nbdkit, ``device``: a
symlink to the mirrored block device that ``ocf:heartbeat:Filesystem`` mounts).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

AGENT_TYPE = "datakeeper"
AGENT_IN_NODE = "/usr/lib/ocf/resource.d/lkconsole/datakeeper"
STATE_DIR = "/opt/LifeKeeper/dk"
RUN_DIR = "/run/lkdr"
PSK_USER = "lkmirror"
PORT_BASE = 10810  # the first mirror's port; each mirror has its own
PROMOTION_SCORE = 100
CLONE_SUFFIX = "-clone"
NO_BITMAP = "none"
# The mirror's membership as the console keeps it: meta attributes of the primitive
# (a change of an instance parameter would reload the Promoted instance, and Pacemaker
# then restarts what depends on it; a meta attribute changes nothing that runs). The
# agent reads them live; the parameters ``servers``/``bitmaps`` are the fallback.
SERVERS_META = "lk-servers"
BITMAPS_META = "lk-bitmaps"
# The resync speed limit (KB/s, 0: unlimited) and each target's replication mode
# (``lab2=async lab3=sync``), meta attributes too for the same reason: the console sends
# a change to the running engine at once, the agent gives them to every new engine and
# puts them right on a running one (monitor).
SPEED_META = "lk-speed-limit"
MODES_META = "lk-modes"
HELD_META = "lk-held-source"  # Out of Service: the source it was (a meta: nothing restarts)
# Resize Mirror under way (``OLD NEW`` bytes): the volumes grow while the mirror is held
# Unpromoted, so a copy that starts meanwhile may have either size.
RESIZE_META = "lk-resize"
MODES = ("sync", "async")

PERMANENT = ("gen", "forced", "paused")
TRANSIENT_SOURCE = ("state", "percent", "rate", "eta", "reason", "dirty", "verify")
TRANSIENT_TARGET = ("serving", "stale")

_RUN = re.compile(r"^(\d+)(?:-(\d+))?$")


def attribute(rid: str, name: str) -> str:
    """``lkdr-RID-NAME``."""
    return f"lkdr-{rid}-{name}"


def promotion_attribute(rid: str) -> str:
    return f"master-{rid}"


def state_dir(rid: str) -> str:
    return f"{STATE_DIR}/{rid}"


def run_dir(rid: str) -> str:
    return f"{RUN_DIR}/{rid}"


def device(rid: str) -> str:
    """The mirrored block device, as ``ocf:heartbeat:Filesystem`` is given it."""
    return f"{RUN_DIR}/{rid}/device"


def clone_id(rid: str) -> str:
    return f"{rid}{CLONE_SUFFIX}"


def parse_pairs(text: str) -> dict[str, str]:
    """``"lab1=10.213.0.11 lab2=10.213.0.12"`` → {node: value}; ValueError when malformed."""
    pairs: dict[str, str] = {}
    for item in text.split():
        node, sep, value = item.partition("=")
        if not sep or not node or not value:
            raise ValueError(f"{item!r} is not NODE=VALUE")
        pairs[node] = value
    return pairs


def format_pairs(pairs: Mapping[str, str]) -> str:
    for node, value in pairs.items():
        if not node or any(c.isspace() or c == "=" for c in node) or not value:
            raise ValueError(f"{node}={value} cannot be a NODE=VALUE pair")
        if any(c.isspace() for c in value):
            raise ValueError(f"{value!r} (of {node}) may not contain spaces")
    return " ".join(f"{node}={value}" for node, value in pairs.items())


def bitmap_of(bitmaps: Mapping[str, str], node: str) -> str | None:
    """The bitmap file of ``node`` (None: no intent log)."""
    value = bitmaps.get(node, NO_BITMAP)
    return None if value == NO_BITMAP else value


def format_runs(chunks: list[int]) -> str:
    """Sorted chunk numbers as runs: ``"0-3 7 10-12"`` (first-last, inclusive)."""
    runs: list[str] = []
    start = prev = None
    for c in sorted(set(chunks)):
        if prev is not None and c == prev + 1:
            prev = c
            continue
        if start is not None:
            runs.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = c
    if start is not None:
        runs.append(str(start) if start == prev else f"{start}-{prev}")
    return " ".join(runs)


def parse_runs(text: str) -> list[tuple[int, int]]:
    """:func:`format_runs`'s text → ``[first, end)`` runs; ValueError when malformed."""
    runs = []
    for item in text.split():
        m = _RUN.match(item)
        if m is None:
            raise ValueError(f"{item!r} is not a chunk run")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        if last < first:
            raise ValueError(f"{item!r}: the run ends before it begins")
        runs.append((first, last + 1))
    return runs


__all__ = [
    "AGENT_IN_NODE",
    "AGENT_TYPE",
    "CLONE_SUFFIX",
    "HELD_META",
    "MODES",
    "MODES_META",
    "NO_BITMAP",
    "PERMANENT",
    "PORT_BASE",
    "PROMOTION_SCORE",
    "PSK_USER",
    "RUN_DIR",
    "SPEED_META",
    "STATE_DIR",
    "TRANSIENT_SOURCE",
    "TRANSIENT_TARGET",
    "attribute",
    "bitmap_of",
    "clone_id",
    "device",
    "format_pairs",
    "format_runs",
    "parse_pairs",
    "parse_runs",
    "promotion_attribute",
    "run_dir",
    "state_dir",
]
