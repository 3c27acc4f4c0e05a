"""A DataKeeper mirror's state, in LifeKeeper's words, from what ``crm_mon`` says.

Pure. The mirror is the promotable clone of ``ocf:lkconsole:datakeeper`` (``cib_dk.py``);
its source is the node where the clone is Promoted (ISP there); a node where it runs
Unpromoted is a target (OSU, as a LifeKeeper target is). Each target's state comes from
the node attributes the source's engine publishes (:mod:`.dk_names`, ``crm_mon
--include=attributes``): ``lkdr-RID-state`` TARGET / RESYNCING / OUT_OF_SYNC, with
``-percent``, ``-rate``, ``-eta``, ``-reason``, ``-dirty``, ``-verify``. A target with no
state yet is Out of Sync (not connected). Without a source there is no mirror to show.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from core.backends.pacemaker import dk_names as names
from core.backends.pacemaker.cib import Member
from core.model import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_SPEED_LIMIT_KBPS,
    Mirror,
    MirrorState,
    MirrorTarget,
)

_STATES = {
    "TARGET": MirrorState.TARGET,
    "RESYNCING": MirrorState.RESYNCING,
    "OUT_OF_SYNC": MirrorState.OUT_OF_SYNC,
}


def node_attributes(crm_mon: ET.Element) -> dict[str, dict[str, str]]:
    """node → {attribute: value} of crm_mon's ``<node_attributes>``."""
    return {
        n.get("name", ""): {a.get("name", ""): a.get("value", "") for a in n.iter("attribute")}
        for n in crm_mon.iterfind("node_attributes/node")
    }


def attributes(crm_mon: ET.Element, cib: ET.Element) -> dict[str, dict[str, str]]:
    """Every node's attributes: the permanent ones of the CIB's ``<nodes>`` (crm_mon
    shows none of a node that is offline, whose generation says who was the source),
    then crm_mon's."""
    found: dict[str, dict[str, str]] = {
        n.get("uname", ""): {
            a.get("name", ""): a.get("value", "") for a in n.iterfind("instance_attributes/nvpair")
        }
        for n in cib.iterfind("configuration/nodes/node")
    }
    for node, values in node_attributes(crm_mon).items():
        found.setdefault(node, {}).update(values)
    return found


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(float(text)) if text else default
    except ValueError:
        return default


def _membership(m: Member, meta_name: str, param: str) -> dict[str, str]:
    try:
        return names.parse_pairs(dict(m.meta).get(meta_name) or m.param(param))
    except ValueError:
        return {}


def servers_of(m: Member) -> dict[str, str]:
    return _membership(m, names.SERVERS_META, "servers")


def bitmap_of(m: Member, server: str) -> str | None:
    return names.bitmap_of(_membership(m, names.BITMAPS_META, "bitmaps"), server)


def target(rid: str, server: str, attrs: Mapping[str, str], size: int) -> MirrorTarget:
    """One target of mirror ``rid`` from ``server``'s node attributes."""

    def get(short: str) -> str | None:
        return attrs.get(names.attribute(rid, short))

    state = _STATES.get(get("state") or "", MirrorState.OUT_OF_SYNC)
    reason = get("reason") or ("" if get("state") else "not connected to the source")
    percent = _int(get("percent"))
    eta = get("eta")
    verify = get("verify")
    return MirrorTarget(
        server=server,
        state=state,
        reason=reason if state is not MirrorState.TARGET else "",
        bytes_done=-(-size * percent // 100) if state is MirrorState.RESYNCING else 0,
        bytes_total=size if state is MirrorState.RESYNCING else 0,
        rate=float(_int(get("rate"))),
        eta=float(_int(eta)) if eta else None,
        dirty_chunks=_int(get("dirty")),
        verify_percent=_int(verify) if verify else None,
    )


def _modes(m: Member) -> dict[str, bool]:
    """target → asynchronous, from the primitive's ``lk-modes`` (none: the mirror's)."""
    try:
        pairs = names.parse_pairs(dict(m.meta).get(names.MODES_META, ""))
    except ValueError:
        return {}
    return {n: mode == "async" for n, mode in pairs.items() if mode in names.MODES}


def mirror(
    m: Member,
    promoted_on: tuple[str, ...],
    attributes: Mapping[str, Mapping[str, str]],
    running_on: tuple[str, ...] = (),
) -> Mirror | None:
    """The mirror of DataKeeper member ``m``; while it has no source, the copies that
    wait for the previous one (None: no source and nobody waits)."""
    size = _int(m.param("size"))
    source = promoted_on[0] if promoted_on else None
    if source is None:
        return _waiting(m, running_on, attributes, size)
    modes = _modes(m)
    targets = tuple(
        dataclasses.replace(
            target(m.xml_id, n, attributes.get(n, {}), size), asynchronous=modes.get(n)
        )
        for n in servers_of(m)
        if n != source
    )
    return _mirror(m, source, size, targets)


def _mirror(m: Member, source: str, size: int, targets: tuple[MirrorTarget, ...]) -> Mirror:
    speed = dict(m.meta).get(names.SPEED_META) or m.param("speed_limit_kbps")
    return Mirror(
        resource_id=m.resource_id,
        source=source,
        volume_size=size,
        chunk_size=_int(m.param("chunk_size"), DEFAULT_CHUNK_SIZE),
        speed_limit_kbps=_int(speed, DEFAULT_SPEED_LIMIT_KBPS),
        asynchronous=m.param("asynchronous").lower() in ("true", "1"),
        targets=targets,
    )


def _waiting(
    m: Member,
    running_on: tuple[str, ...],
    attributes: Mapping[str, Mapping[str, str]],
    size: int,
) -> Mirror | None:
    """No source: a running copy older than the newest (``lkdr-RID-gen``) waits for the
    previous source (its holder is shown as the source, not running)."""
    servers = servers_of(m)
    gen = names.attribute(m.xml_id, "gen")
    gens = {n: _int(attributes.get(n, {}).get(gen)) for n in servers}
    top = max(gens.values(), default=0)
    previous = [n for n, g in gens.items() if g == top]
    waiting = [n for n in running_on if n in servers and gens.get(n, 0) < top]
    if not waiting or any(n in running_on for n in previous):
        return None
    old = previous[0]
    targets = tuple(
        MirrorTarget(
            n,
            MirrorState.WAIT_FOR_PREVIOUS_SOURCE,
            reason=f"its copy may be stale: it waits for the previous source {old}",
        )
        if n in waiting
        else target(m.xml_id, n, attributes.get(n, {}), size)
        for n in servers
        if n != old
    )
    return _mirror(m, old, size, targets)


__all__ = ["attributes", "bitmap_of", "mirror", "node_attributes", "servers_of", "target"]
