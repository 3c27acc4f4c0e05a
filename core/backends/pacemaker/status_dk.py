"""A DataKeeper mirror's state, in LifeKeeper's words, from what ``crm_mon`` says.

Pure. The mirror is the promotable clone of ``ocf:lkconsole:datakeeper`` (``cib_dk.py``);
its source is the node where the clone is Promoted (ISP there); a node where it runs
Unpromoted is a target (OSU, as a LifeKeeper target is). Each target's state comes from
the node attributes the source's engine publishes (:mod:`.dk_names`, ``crm_mon
--include=attributes``): ``lkdr-RID-state`` TARGET / RESYNCING / OUT_OF_SYNC, with
``-percent``, ``-rate``, ``-eta``, ``-reason``, ``-dirty``, ``-verify``. A target with no
state yet is Out of Sync (not connected).

Without a source (it died, or is not in service), what the last source's engine said
is moot: the copies' generations (``lkdr-RID-gen``, permanent, in the CIB for offline
nodes too) say who waits. When one node holds the newest copy, it is the previous
source and every other copy is "Out of Sync (Wait for Previous Source)" (the agent
gives none of them a promotion score); when several hold it, one of them takes over
and there is no mirror to show until it does.
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


def node_attributes(
    crm_mon: ET.Element, cib: ET.Element | None = None
) -> dict[str, dict[str, str]]:
    """node → {attribute: value} of crm_mon's ``<node_attributes>`` and, for what crm_mon
    leaves out (an offline node's), the permanent ones of the CIB's ``<nodes>``."""
    found = {
        n.get("name", ""): {a.get("name", ""): a.get("value", "") for a in n.iter("attribute")}
        for n in crm_mon.iterfind("node_attributes/node")
    }
    for node in cib.iterfind(".//nodes/node") if cib is not None else ():
        values = found.setdefault(node.get("uname", ""), {})
        for nvpair in node.iterfind("instance_attributes/nvpair"):
            values.setdefault(nvpair.get("name", ""), nvpair.get("value", ""))
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


def target(
    rid: str, server: str, attrs: Mapping[str, str], size: int, running: bool = True
) -> MirrorTarget:
    """One target of mirror ``rid`` from ``server``'s node attributes (``running``: a
    copy of the mirror runs on ``server``)."""

    def get(short: str) -> str | None:
        return attrs.get(names.attribute(rid, short))

    state = _STATES.get(get("state") or "", MirrorState.OUT_OF_SYNC)
    silent = (
        "not connected to the source"
        if running
        else f"no copy runs on {server}: the server is down or its copy is stopped"
    )
    reason = get("reason") or ("" if get("state") else silent)
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
    """The mirror of DataKeeper member ``m`` (with no source: see :func:`_waiting`;
    ``running_on``: where its copies run, to tell a previous source that is back)."""
    servers = servers_of(m)
    size = _int(m.param("size"))
    source = promoted_on[0] if promoted_on else None
    held = dict(m.meta).get(names.HELD_META)
    if source is None and held in servers:
        return _held(m, held, servers, size, attributes)
    if source is None:
        return _waiting(m, servers, size, attributes, running_on)
    modes = _modes(m)
    targets = tuple(
        dataclasses.replace(
            target(m.xml_id, n, attributes.get(n, {}), size, n in running_on),
            asynchronous=modes.get(n),
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


def _held(
    m: Member,
    source: str,
    servers: Mapping[str, str],
    size: int,
    attributes: Mapping[str, Mapping[str, str]],
) -> Mirror:
    """The mirror taken out of service (its clone held Unpromoted): its source stays the
    one it was; a copy the source last confirmed (its generation) is a Target still, any
    other Out of Sync, never to be brought in service before it is resynced."""
    gens = {n: _int(attributes.get(n, {}).get(names.attribute(m.xml_id, "gen"))) for n in servers}
    targets = tuple(
        MirrorTarget(server=n, state=MirrorState.TARGET)
        if gens[n] > 0 and gens[n] >= gens[source]
        else MirrorTarget(
            server=n,
            state=MirrorState.OUT_OF_SYNC,
            reason=f"the copy on {n} (generation {gens[n]}, {source} has {gens[source]}) "
            f"missed writes of {source}",
        )
        for n in servers
        if n != source
    )
    return _mirror(m, source, size, targets)


def _waiting(
    m: Member,
    servers: Mapping[str, str],
    size: int,
    attributes: Mapping[str, Mapping[str, str]],
    running_on: tuple[str, ...] = (),
) -> Mirror | None:
    """The mirror with no source: the previous source and the copies waiting for it (see
    the module docstring); None while no single node holds the newest copy, or when the
    previous source runs again (Pacemaker promotes it)."""

    def get(node: str, short: str) -> str:
        return attributes.get(node, {}).get(names.attribute(m.xml_id, short), "")

    gens = {n: _int(get(n, "gen")) for n in servers}
    top = max(gens.values(), default=0)
    newest = [n for n, g in gens.items() if g == top]
    if top <= 0 or len(newest) != 1 or newest[0] in running_on:
        return None
    previous = newest[0]
    targets = tuple(
        MirrorTarget(server=n, state=MirrorState.OUT_OF_SYNC, reason="forced online")
        if get(n, "forced") == "1"
        else MirrorTarget(
            server=n,
            state=MirrorState.WAIT_FOR_PREVIOUS_SOURCE,
            reason=f"the previous source {previous} is not in service: the copy on {n} "
            f"(generation {gens[n]}, {previous} has {top}) may be stale; bring {previous} "
            f"back, or force {n} online",
        )
        for n in servers
        if n != previous
    )
    return _mirror(m, previous, size, targets)


__all__ = ["bitmap_of", "mirror", "node_attributes", "servers_of", "target"]
