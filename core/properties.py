"""What the properties panel shows for a server, a resource or a cell: rows, no Qt.

Each function returns :class:`Section` values (a title and ``(label, value)`` rows, with
an optional icon name from ``resources/icons``); the console renders them as they are,
and a test reads them without a window.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from core.availability import Selection
from core.model import (
    Cluster,
    Hierarchy,
    Mirror,
    MirrorState,
    MirrorTarget,
    NodeStatus,
    Resource,
    ResourceKind,
    ResourceState,
    ServerState,
)
from core.rules import commpaths
from core.status import cell, format_eta, format_rate, format_size

_SERVER_ICON = {
    ServerState.ALIVE: "server-alive",
    ServerState.ALIVE_WARNING: "server-warning",
    ServerState.ALIVE_STANDBY: "server-warning",
    ServerState.DEAD: "server-dead",
    ServerState.UNKNOWN: "server-unknown",
}


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    icon: str | None = None  # resources/icons/<icon>.svg


@dataclass(frozen=True)
class Section:
    title: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Properties:
    """Everything the panel shows: a heading (with its icon), sections, or a hint."""

    heading: str
    icon: str | None
    sections: tuple[Section, ...]
    hint: str = ""  # shown instead of sections when there is nothing to describe


NOTHING = Properties(
    "No selection",
    None,
    (),
    "Select a resource or a cell in the status table, or click a server's column header, "
    "to see its properties here.",
)
NOT_CONNECTED = Properties(
    "Not connected", None, (), "Connect to a cluster (File › Connect) to see its properties."
)


def properties(cluster: Cluster | None, selection: Selection) -> Properties:
    """The panel's content for ``selection``."""
    if cluster is None:
        return NOT_CONNECTED
    if selection.hierarchy_id is not None and selection.resource_id is not None:
        h = cluster.hierarchy(selection.hierarchy_id)
        if h is not None and selection.resource_id in h.resource_ids():
            if selection.server is not None and cluster.server(selection.server) is not None:
                return cell_properties(cluster, h, selection.resource_id, selection.server)
            return resource_properties(cluster, h, selection.resource_id)
    elif selection.server is not None and cluster.server(selection.server) is not None:
        return server_properties(cluster, selection.server)
    return NOTHING


# -- server ----------------------------------------------------------------------------------
def server_properties(cluster: Cluster, name: str) -> Properties:
    server = cluster.server(name)
    assert server is not None
    active: list[str] = []
    standby: list[str] = []
    sources: list[str] = []
    targets: list[str] = []
    for h in cluster.hierarchies:
        if name not in h.servers:
            continue
        (active if h.in_service_server == name else standby).append(h.root_tag)
        for m in h.mirrors:
            dk = h.tag_of(m.resource_id)
            if m.source == name and m.targets:
                sources.append(dk)
            target = m.target(name)
            if target is not None:
                targets.append(f"{dk} ({_target_text(target)})")
    general = (
        Row("Name", server.name),
        Row("State", server.state.value, _SERVER_ICON[server.state]),
        Row("Hierarchies in service", _list(active)),
        Row("Standby hierarchies", _list(standby)),
        Row("Shutdown Strategy", server.shutdown_strategy.value),
        Row("Failover Confirmation", _list(list(server.confirm_failover_from))),
    )
    peers = tuple(
        Row(f"Peer {v.peer}", v.text, _SERVER_ICON.get(v.state))
        for v in commpaths.peers(cluster, name)
        if v.paths
    )
    mirrors = (
        Row("Mirror source of", _list(sources)),
        Row("Mirror target of", _list(targets)),
    )
    return Properties(
        f"Server {server.name}",
        _SERVER_ICON[server.state],
        (
            Section("Server", general),
            Section("Mirrors", mirrors),
            *((Section("Comm paths", peers),) if peers else ()),
        ),
    )


# -- resource (all servers) -------------------------------------------------------------------
def resource_properties(cluster: Cluster, h: Hierarchy, resource_id: int) -> Properties:
    kind = h.kind_of(resource_id)
    tag = h.tag_of(resource_id)
    status = h.status(resource_id)
    general = [
        Row("Tag", tag),
        Row("Kind", kind.label, kind_icon(kind)),
        Row("Hierarchy", _hierarchy_text(h)),
        Row("Overall state", status.label, _node_icon(status)),
        Row("Switchback type", h.switchback.value),
    ]
    general.extend(_dependency_rows(h, resource_id))
    states = []
    for server in cluster.servers:
        c = cell(h, resource_id, server.name)
        if c is None:
            continue
        inst = h.instance(resource_id, server.name)
        assert inst is not None
        states.append(
            Row(server.name, _state_text(h, resource_id, server.name, inst), f"state-{c.icon}")
        )
    priorities = tuple(
        Row(e.server, str(e.priority)) for e in sorted(h.equivalencies, key=lambda e: e.priority)
    )
    sections = [
        Section("Resource", tuple(general)),
        Section("State per server", tuple(states)),
        Section("Priorities (1 = preferred)", priorities),
    ]
    sections.extend(_settings_sections(h, resource_id, h.home_server))
    mirror = h.mirror(resource_id)
    if mirror is not None:
        sections.extend(mirror_sections(h, mirror))
    return Properties(tag, _node_icon(status), tuple(sections))


# -- cell (one resource on one server) ---------------------------------------------------------
def cell_properties(cluster: Cluster, h: Hierarchy, resource_id: int, server: str) -> Properties:
    c = cell(h, resource_id, server)
    inst = h.instance(resource_id, server)
    tag = inst.tag if inst is not None else h.tag_of(resource_id)
    kind = h.kind_of(resource_id)
    server_state = cluster.server(server)
    rows = [
        Row("Tag", tag),
        Row("Kind", kind.label, kind_icon(kind)),
        Row("Server", server, _SERVER_ICON[server_state.state] if server_state else None),
        Row("Hierarchy", _hierarchy_text(h)),
    ]
    if c is None or inst is None:
        rows.append(Row("State", f"Not defined on {server}"))
        return Properties(f"{tag} on {server}", None, (Section("Resource", tuple(rows)),))
    rows.append(Row("State", f"{inst.state.cell_text} ({inst.state.name})", _state_icon(inst)))
    if c.text != inst.state.cell_text:  # a DataKeeper copy: Source, Target, Resyncing...
        target = h.mirror(resource_id)
        role = target.target(server) if target is not None else None
        text = _target_text(role) if role is not None else c.text
        rows.append(Row("Mirror", text, f"state-{c.icon}"))
    priority = h.priority_of(server)
    rows.append(Row("Priority", str(priority) if priority is not None else "—"))
    rows.extend(_dependency_rows(h, resource_id))
    sections = [Section("Resource", tuple(rows))]
    sections.extend(_settings_sections(h, resource_id, server))
    mirror = h.mirror(resource_id)
    if mirror is not None:
        sections.extend(mirror_sections(h, mirror, only=server))
    return Properties(f"{tag} on {server}", f"state-{c.icon}", tuple(sections))


# -- pieces ----------------------------------------------------------------------------------
def mirror_sections(h: Hierarchy, mirror: Mirror, only: str | None = None) -> list[Section]:
    """The mirror of a DataKeeper resource; with ``only``, as seen from that server."""
    source_inst = h.instance(mirror.resource_id, mirror.source)
    bitmap = source_inst.bitmap_file if source_inst is not None else None
    rows = [
        Row("Source", mirror.source, "state-source"),
        Row("Targets", _list([t.server for t in mirror.targets])),
        Row("Volume size", format_size(mirror.volume_size)),
        Row("Chunk size", format_size(mirror.chunk_size)),
        Row("Source bitmap", _bitmap_text(bitmap)),
        Row("Replication", "asynchronous" if mirror.asynchronous else "synchronous"),
        Row("Speed limit", _speed_limit_text(mirror.speed_limit_kbps)),
    ]
    sections = [Section("Mirror", tuple(rows))]
    for target in mirror.targets:
        if only is not None and only not in (target.server, mirror.source):
            continue
        sections.append(Section(f"Target {target.server}", target_rows(h, mirror, target)))
    return sections


def target_rows(h: Hierarchy, mirror: Mirror, target: MirrorTarget) -> tuple[Row, ...]:
    inst = h.instance(mirror.resource_id, target.server)
    bitmap = inst.bitmap_file if inst is not None else None
    rows = [
        Row("Sync state", _target_text(target), f"state-{_target_icon(target.state)}"),
    ]
    if target.reason:
        rows.append(Row("Reason", target.reason))
    rows.append(Row("Target bitmap", _bitmap_text(bitmap)))
    dirty = f"{target.dirty_chunks} ({format_size(target.dirty_chunks * mirror.chunk_size)})"
    rows.append(Row("Dirty chunks", dirty))
    if target.state is MirrorState.RESYNCING:
        total = target.bytes_total or mirror.volume_size
        rows.append(
            Row(
                "Progress",
                f"{target.percent} % ({format_size(target.bytes_done)} of {format_size(total)})",
            )
        )
        rows.append(Row("Rate", format_rate(target.rate) if target.rate > 0 else "—"))
        rows.append(Row("ETA", format_eta(target.eta) if target.eta is not None else "—"))
    if target.verify_percent is not None:
        rows.append(Row("Online verify", f"{target.verify_percent} % done"))
    if target.last_verified is not None:
        when = _dt.datetime.fromtimestamp(target.last_verified).strftime("%Y-%m-%d %H:%M")
        found = target.last_differences or 0
        rows.append(Row("Last verified", f"{when}, {found} difference{'s' if found != 1 else ''}"))
    return tuple(rows)


def _settings_sections(h: Hierarchy, resource_id: int, server: str) -> list[Section]:
    inst = h.instance(resource_id, server) or next(
        (r for r in h.resources if r.resource_id == resource_id), None
    )
    if inst is None:
        return []
    rows = _instance_rows(inst)
    return [Section("Settings", rows)] if rows else []


def _instance_rows(inst: Resource) -> tuple[Row, ...]:
    if inst.kind is ResourceKind.FILESYSTEM:
        return (
            Row("Mount point", inst.mount_point or "—"),
            Row("File system type", inst.fs_type or "—"),
        )
    if inst.kind is ResourceKind.DATAKEEPER:  # its bitmap is shown with the mirror
        return (Row("Volume", inst.volume or "—"),)
    return _kit_rows(inst)


def kind_icon(kind: ResourceKind) -> str:
    """The icon of a resource kind (resources/icons/kind-*.svg)."""
    return f"kind-{kind.value}"


def _kit_rows(inst: Resource) -> tuple[Row, ...]:
    """The settings of an IP address and of a Generic Application (and why it failed)."""
    if inst.kind is ResourceKind.IP:
        rows = [
            Row("IP address", inst.setting("address") or "—"),
            Row("Network interface", inst.setting("interface") or "—"),
        ]
    elif inst.kind is ResourceKind.APP:
        rows = [
            Row("Start command", inst.setting("start") or "—"),
            Row("Stop command", inst.setting("stop") or "—"),
            Row("Monitor command", inst.setting("monitor") or "— (none: healthy while started)"),
            Row("Restart mode", _restart_text(inst.setting("restart"))),
        ]
    else:
        rows = [Row(name, value) for name, value in inst.settings]
    if inst.reason:
        rows.append(Row("Reason", inst.reason))
    return tuple(rows)


def _restart_text(mode: str) -> str:
    value = mode.strip().lower()
    if value in ("", "yes"):
        return "yes (1 restart, then failover)"
    if value == "no":
        return "no (failover at once)"
    return f"{value} ({value} restarts, then failover)"


def _dependency_rows(h: Hierarchy, resource_id: int) -> list[Row]:
    parent = h.parent(resource_id)
    children = [h.tag_of(c) for c in h.children(resource_id)]
    return [
        Row("Depends on", _list(children)),
        Row("Needed by", h.tag_of(parent) if parent is not None else "—"),
    ]


def _hierarchy_text(h: Hierarchy) -> str:
    where = h.in_service_server
    state = f"in service on {where}" if where else "not in service"
    return f"{h.root_tag} ({state})"


def _target_text(target: MirrorTarget) -> str:
    if target.state is MirrorState.RESYNCING:
        return f"Resyncing {target.percent} %"
    return target.state.label


_TARGET_ICON = {
    MirrorState.TARGET: "target",
    MirrorState.RESYNCING: "resyncing",
    MirrorState.OUT_OF_SYNC: "outofsync",
    MirrorState.WAIT_FOR_PREVIOUS_SOURCE: "waitsource",
}


def _target_icon(state: MirrorState) -> str:
    return _TARGET_ICON[state]


def _state_text(h: Hierarchy, resource_id: int, server: str, inst: Resource) -> str:
    """ "Active (ISP)"; for a mirror copy also its role: "Resyncing 42 % — Standby (OSU)"."""
    state = f"{inst.state.cell_text} ({inst.state.name})"
    mirror = h.mirror(resource_id)
    if mirror is None or not mirror.targets or inst.state is ResourceState.OSF:
        return state
    if server == mirror.source and inst.state.in_service:
        return f"Source — {state}"
    target = mirror.target(server)
    return f"{_target_text(target)} — {state}" if target is not None else state


def _state_icon(inst: Resource) -> str:
    return f"state-{_RESOURCE_ICON[inst.state]}"


_RESOURCE_ICON = {
    ResourceState.ISP: "active",
    ResourceState.ISU: "degraded",
    ResourceState.OSU: "standby",
    ResourceState.OSF: "failed",
    ResourceState.ILLSTATE: "unknown",
    ResourceState.UNKNOWN: "unknown",
}


def _node_icon(status: NodeStatus) -> str:
    return f"node-{status.name.lower()}"


def _bitmap_text(bitmap: str | None) -> str:
    return bitmap if bitmap else "None (every resync is a full resync)"


def _speed_limit_text(kbps: int) -> str:
    return "unlimited" if kbps <= 0 else f"{kbps:,} KB/s".replace(",", " ")


def _list(items: list[str]) -> str:
    return ", ".join(items) if items else "—"
