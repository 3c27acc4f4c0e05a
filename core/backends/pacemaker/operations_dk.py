"""DataKeeper's plan steps as a change of a CIB copy (pure), and the work on the nodes
that must precede it (the target's volume, the mirror's key), which the backend does
through its runner before it pushes the change.

Extend (``core/rules/extend.py``'s steps), on the CIB of ``cib_dk.py``:

- ``CreateDataKeeperTarget``: the target joins the mirror's ``servers`` (with its
  replication address, the node's Corosync address), the clone may run there; node
  work: its volume (``datakeeper admin make-disk`` when missing: an existing one of the
  same size is kept), and the mirror's key carried from the source (``key-get`` →
  ``key-put``, through the console's memory only);
- ``ConfigureMirror``: the target's bitmap file joins ``bitmaps``;
- ``StartResync``: nothing in the CIB: once the target serves, the source's agent
  connects it and the engine resyncs (the agent reloads on the parameters' change);
- ``SetPriorities`` (operations.py) also gives the clone the group's score.

Pacemaker runs one primitive for every node, so the volume path is the same on every
server of a mirror (refused otherwise).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.backends.pacemaker import cib as cibxml
from core.backends.pacemaker import cib_dk
from core.backends.pacemaker import dk_names as names
from core.backends.pacemaker.cib import HierarchyConfig, Member, Refused
from core.model import ResourceKind
from core.plan import ConfigureMirror, CreateDataKeeperTarget, StartResync


@dataclass(frozen=True)
class NodeWork:
    """Something done on a node before the CIB change is pushed."""

    kind: str  # one of dk_nodes.KINDS: "volume" (node, path, size), "key" (source → node), …
    node: str
    rid: str
    path: str = ""
    size: int = 0
    old_size: int = 0  # "grow-volume", "grow-bitmap": the size before (for the undo)
    source: str = ""
    fs_type: str = ""  # "mkfs"
    argv: tuple[str, ...] = ()  # "command": a cluster command (no secret), run anywhere


def mirror_member(h: HierarchyConfig) -> Member:
    dk = next((m for m in h.members if m.kind is ResourceKind.DATAKEEPER), None)
    if dk is None:
        raise Refused(f"{h.root.tag} has no DataKeeper resource")
    return dk


def _primitive(work: ET.Element, rid: str) -> ET.Element:
    found = work.find(f".//primitive[@id='{rid}']")
    if found is None:
        raise Refused(f"the mirror {rid} is no longer in the cluster's configuration; reload")
    return found


def set_membership(work: ET.Element, rid: str, name: str, value: str) -> None:
    """The mirror's ``lk-servers``/``lk-bitmaps`` (see dk_names: never a parameter)."""
    _primitive(work, rid)
    cibxml.set_meta(work, rid, name, value)


def _pairs(m: Member, meta_name: str, param: str) -> dict[str, str]:
    text = dict(m.meta).get(meta_name) or m.param(param)
    try:
        return names.parse_pairs(text)
    except ValueError as exc:
        raise Refused(f"{m.tag}'s {meta_name} cannot be read ({exc}): fix it with crm") from exc


def create_target(
    work: ET.Element, h: HierarchyConfig, step: CreateDataKeeperTarget,
    addresses: Mapping[str, str], running: Mapping[str, Sequence[str]] | None = None,
    promoted: Mapping[str, Sequence[str]] | None = None,
) -> list[NodeWork]:  # fmt: skip
    """The target joins the mirror (see the module docstring); the node work it needs."""
    r = step.resource
    dk = mirror_member(h)
    if r.tag != dk.tag:
        raise Refused(f"on a Pacemaker cluster the mirror has one tag: {dk.tag}, not {r.tag}")
    if r.volume and r.volume != dk.param("volume"):
        raise Refused(
            f"on a Pacemaker cluster a mirror's volume has one path on every server: "
            f"{dk.param('volume')}, not {r.volume} on {r.server}"
        )
    cibxml.check_node(work, r.server)
    if r.server not in addresses:
        raise Refused(f"{r.server} has no address in Corosync's node list")
    servers = _pairs(dk, names.SERVERS_META, "servers")
    source = current_source(h, servers, running, promoted)
    servers[r.server] = addresses[r.server]
    set_membership(work, dk.xml_id, names.SERVERS_META, names.format_pairs(servers))
    clone = cib_dk.clone_of(work, dk.xml_id)
    if clone is None:
        raise Refused(f"the mirror {dk.tag} is not a promotable clone")
    cib_dk.set_clone_allowed(work, clone.get("id", ""), r.server, 0)
    return [
        NodeWork("volume", r.server, dk.xml_id, path=dk.param("volume"), size=step.size),
        NodeWork("key", r.server, dk.xml_id, source=source),
    ]


def current_source(
    h: HierarchyConfig,
    servers: Mapping[str, str],
    running: Mapping[str, Sequence[str]] | None,
    promoted: Mapping[str, Sequence[str]] | None,
) -> str:
    """The node whose key a new target gets: where the mirror is Promoted now; else where
    what depends on it runs (it runs only there); else a node of the mirror where the
    clone runs (each has the key); else the first listed server."""
    dk = mirror_member(h)
    running = running or {}
    candidates = [
        *(promoted or {}).get(dk.xml_id, ()),
        *(n for m in h.members if m.xml_id != dk.xml_id for n in running.get(m.xml_id, ())),
        *running.get(dk.xml_id, ()),
    ]
    return next((n for n in candidates if n in servers), next(iter(servers), ""))


def in_service_nodes(
    h: HierarchyConfig,
    running: Mapping[str, Sequence[str]],
    promoted: Mapping[str, Sequence[str]] | None,
) -> list[str]:
    """Where ``h`` is in service: a mirror only where it is Promoted (it runs Unpromoted
    on each target), the others wherever they run."""
    return sorted(
        {
            n
            for m in h.members
            for n in (
                (promoted or {}).get(m.xml_id, ())
                if m.kind is ResourceKind.DATAKEEPER
                else running.get(m.xml_id, ())
            )
        }
    )


def hold_sources(
    work: ET.Element, h: HierarchyConfig, held: bool, server: str | None = None
) -> None:
    """Out of Service of ``h``'s mirrors: each clone held Unpromoted (its source, on
    ``server``, demoted and recorded for the status; its targets serve on); In Service:
    released, its Promoted role preferred on ``server`` until ``h`` is in service there
    (the follow-up clears it)."""
    for m in h.members:
        if m.kind is not ResourceKind.DATAKEEPER:
            continue
        clone = cib_dk.clone_of(work, m.xml_id)
        if clone is None:
            continue
        cibxml.set_meta(work, clone.get("id", ""), "target-role", "Unpromoted" if held else None)
        cibxml.set_meta(work, m.xml_id, names.HELD_META, server if held else None)
        cib_dk.set_source_preference(work, m.xml_id, None if held else server)


def inverse(work: NodeWork) -> NodeWork | None:
    """What undoes ``work`` (None: nothing, or not undone)."""
    if work.kind == "make-disk":
        return NodeWork("remove-disk", work.node, work.rid, path=work.path)
    if work.kind == "key-new":
        return NodeWork("forget", work.node, work.rid)
    if work.kind in ("grow-volume", "grow-bitmap"):
        return NodeWork(f"un{work.kind}", work.node, work.rid, path=work.path,
                        size=work.size, old_size=work.old_size)  # fmt: skip
    if work.kind == "command" and work.argv == tuple(cib_dk.first_generation(work.rid, work.node)):
        return NodeWork("command", work.node, work.rid,
                        argv=tuple(cib_dk.forget_generation(work.rid, work.node)))  # fmt: skip
    return None


def leave_work(rid: str, node: str, bitmap: str | None) -> list[NodeWork]:
    """After ``node`` left mirror ``rid``: its key and record go (``forget``; the volume
    stays), its bitmap file, and the mirror's node attributes there."""
    works = [NodeWork("forget", node, rid)]
    if bitmap:
        works.append(NodeWork("remove-file", node, rid, path=bitmap))
    works += [
        NodeWork("command", node, rid, argv=tuple(argv))
        for argv in cib_dk.forget_attributes(rid, node)
    ]
    return works


def configure_mirror(work: ET.Element, h: HierarchyConfig, step: ConfigureMirror) -> None:
    dk = mirror_member(h)
    bitmaps = _pairs(dk, names.BITMAPS_META, "bitmaps")
    bitmaps[step.target] = step.target_bitmap or names.NO_BITMAP
    set_membership(work, dk.xml_id, names.BITMAPS_META, names.format_pairs(bitmaps))


def start_resync(h: HierarchyConfig, step: StartResync) -> str:
    dk = mirror_member(h)
    return f"{dk.tag}: the source connects {step.target} once it serves, then resyncs it"


def clone_scores(work: ET.Element, h: HierarchyConfig, scores: Mapping[str, int]) -> None:
    """The clone of a mirrored hierarchy may run where the group may, with its scores."""
    if cibxml.mirror_primitive(work, h.top_id) is None:
        return
    dk = mirror_member(h)
    clone = cib_dk.clone_of(work, dk.xml_id)
    if clone is not None:
        for node, score in scores.items():
            cib_dk.set_clone_allowed(work, clone.get("id", ""), node, score)


__all__ = [
    "NodeWork",
    "clone_scores",
    "configure_mirror",
    "create_target",
    "current_source",
    "in_service_nodes",
    "inverse",
    "leave_work",
    "mirror_member",
    "set_membership",
    "start_resync",
]
