"""What Pacemaker says, in LifeKeeper's words: ``crm_mon --output-as=xml`` + the CIB → Cluster.

Pure functions (no I/O). The CIB says what the hierarchies are (``cib.py``); crm_mon
says where each resource runs and what failed; ``corosync-cfgtool -s`` says which links
are up. The mapping (CLUSTER.md):

- **servers**: online → ALIVE; online in standby → ALIVE (standby); in maintenance →
  ALIVE (warning); online with a link to
  an online peer down → ALIVE (warning); offline or unclean → DEAD; pending → UNKNOWN.
- **resource states** on each server where the hierarchy is defined (and where it runs):
  running there (managed, not failed) → ISP; running there but unmanaged, blocked or
  failed → ISU; not running, with a failed operation or a fail-count there → OSF (the
  failure's exit reason in ``Resource.reason``); not running → OSU; on a server that is
  down → UNKNOWN (OSF when crm_mon still lists it there: the node is unclean).
- **comm paths**: each knet link from the node the commands run on to each peer.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from core.backends.pacemaker import cib as cibxml
from core.backends.pacemaker import cib_tree, status_dk
from core.backends.pacemaker.cib import HierarchyConfig, Member
from core.model import (
    Cluster,
    CommPath,
    CommPathState,
    Dependency,
    Equivalency,
    Hierarchy,
    Resource,
    ResourceKind,
    ResourceState,
    Server,
    ServerState,
)


class StatusError(cibxml.CibError):
    """crm_mon's output cannot be read."""


def parse_crm_mon(text: str) -> ET.Element:
    """The ``<pacemaker-result>`` of ``crm_mon --output-as=xml``."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise StatusError(f"crm_mon's output is not XML: {exc}") from exc
    if root.tag != "pacemaker-result":
        raise StatusError(f"not crm_mon's XML (its root element is <{root.tag}>)")
    status = root.find("status")
    if status is not None and status.get("code", "0") != "0" and root.find("nodes") is None:
        raise StatusError(f"crm_mon: {status.get('message', 'failed')}")
    return root


def _true(element: ET.Element, name: str) -> bool:
    return element.get(name, "false") == "true"


# -- nodes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeView:
    """One node as crm_mon shows it."""

    name: str
    node_id: str
    online: bool
    standby: bool
    maintenance: bool
    unclean: bool
    pending: bool

    @property
    def state(self) -> ServerState:
        if self.pending and not self.online:
            return ServerState.UNKNOWN
        if not self.online or self.unclean:
            return ServerState.DEAD
        if self.standby:
            return ServerState.ALIVE_STANDBY
        if self.maintenance:
            return ServerState.ALIVE_WARNING
        return ServerState.ALIVE


def node_views(crm_mon: ET.Element) -> list[NodeView]:
    return [
        NodeView(
            name=n.get("name", ""),
            node_id=n.get("id", ""),
            online=_true(n, "online"),
            standby=_true(n, "standby") or _true(n, "standby_onfail"),
            maintenance=_true(n, "maintenance"),
            unclean=_true(n, "unclean"),
            pending=_true(n, "pending"),
        )
        for n in crm_mon.iterfind("nodes/node")
        if n.get("type", "member") != "ping"
    ]


def quorate(crm_mon: ET.Element) -> bool:
    dc = crm_mon.find("summary/current_dc")
    return dc is not None and dc.get("with_quorum") == "true"


def maintenance_mode(crm_mon: ET.Element) -> bool:
    options = crm_mon.find("summary/cluster_options")
    return options is not None and options.get("maintenance-mode") == "true"


# -- resources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceView:
    """One primitive as crm_mon shows it."""

    xml_id: str
    role: str
    running_on: tuple[str, ...]
    managed: bool
    failed: bool
    blocked: bool
    target_role: str = ""
    pending: str = ""  # an operation in progress: "Starting", "Stopping", "Monitoring"...
    promoted_on: tuple[str, ...] = ()  # a promotable clone's instances: where Promoted


# Roles crm_mon shows while an operation runs (Pacemaker records pending operations).
_PENDING = ("Starting", "Stopping", "Promoting", "Demoting", "Migrating")


def resource_views(resources: ET.Element | None) -> dict[str, ResourceView]:
    """Every primitive of crm_mon's (or crm_simulate's) ``<resources>``, by id."""
    found: dict[str, ResourceView] = {}
    if resources is None:
        return found
    for r in resources.iter("resource"):
        rid = r.get("id", "")
        nodes = tuple(n.get("name", "") for n in r.findall("node"))
        active = _true(r, "active")
        view = ResourceView(
            xml_id=rid,
            role=r.get("role", ""),
            running_on=nodes if active else (),
            managed=r.get("managed", "true") == "true",
            failed=_true(r, "failed"),
            blocked=_true(r, "blocked"),
            target_role=r.get("target_role", ""),
            pending=r.get("pending", "")
            or (r.get("role", "") if r.get("role") in _PENDING else ""),
            promoted_on=nodes if active and r.get("role") in ("Promoted", "Master") else (),
        )
        found[rid] = _merged(found[rid], view) if rid in found else view
    return found


def _merged(a: ResourceView, b: ResourceView) -> ResourceView:
    """The instances of one clone (crm_mon lists each as a resource of the same id)."""
    return ResourceView(
        xml_id=a.xml_id,
        role=b.role if b.promoted_on else a.role,
        running_on=tuple(dict.fromkeys([*a.running_on, *b.running_on])),
        managed=a.managed and b.managed,
        failed=a.failed or b.failed,
        blocked=a.blocked or b.blocked,
        target_role=a.target_role or b.target_role,
        pending=a.pending or b.pending,
        promoted_on=(*a.promoted_on, *b.promoted_on),
    )


def placements(resources: ET.Element | None) -> dict[str, tuple[str, ...]]:
    """Primitive id → the nodes it runs on (crm_mon, or crm_simulate's revised status)."""
    return {rid: v.running_on for rid, v in resource_views(resources).items()}


@dataclass(frozen=True)
class Failure:
    """A failed operation of a resource on a node (crm_mon's ``<failures>``)."""

    xml_id: str
    node: str
    task: str
    exit_reason: str
    exit_status: str
    exit_code: str
    when: str

    @property
    def text(self) -> str:
        why = self.exit_reason or self.exit_status or "failed"
        code = f" (exit {self.exit_code}: {self.exit_status})" if self.exit_code else ""
        when = f" at {self.when}" if self.when else ""
        return f"{self.task} failed on {self.node}{when}: {why}{code}"


def failures(crm_mon: ET.Element) -> list[Failure]:
    found = []
    for f in crm_mon.iterfind("failures/failure"):
        task = f.get("task", "")
        interval = f.get("interval", "0")
        op_key = f.get("op_key") or f.get("id") or ""
        suffix = f"_{task}_{interval}"
        xml_id = op_key[: -len(suffix)] if task and op_key.endswith(suffix) else op_key
        if not task:  # an older schema: op_key is RSC_TASK_INTERVAL
            xml_id, _sep, _rest = op_key.rpartition("_")
            xml_id, _sep, task = xml_id.rpartition("_")
        found.append(
            Failure(
                xml_id=xml_id,
                node=f.get("node", ""),
                task=task,
                exit_reason=f.get("exitreason", ""),
                exit_status=f.get("exitstatus", ""),
                exit_code=f.get("exitcode", ""),
                when=f.get("last-rc-change", ""),
            )
        )
    return found


def fail_counts(crm_mon: ET.Element) -> dict[tuple[str, str], int]:
    """(primitive id, node) → fail-count, from crm_mon's node history."""
    counts: dict[tuple[str, str], int] = {}
    for node in crm_mon.iterfind("node_history/node"):
        for history in node.findall("resource_history"):
            value = history.get("fail-count")
            if value:
                counts[(history.get("id", ""), node.get("name", ""))] = cibxml.parse_score(value)
    return counts


# -- comm paths ------------------------------------------------------------------------------

_LOCAL = re.compile(r"^Local node ID (\d+)")
_LINK = re.compile(r"^LINK ID (\d+)")
_ADDR = re.compile(r"^\s*addr\s*=\s*(\S+)")
_PEER = re.compile(r"^\s*nodeid:?\s+(\d+):\s*(\S+)")


@dataclass(frozen=True)
class LinkStatus:
    link: int
    local_address: str
    peers: tuple[tuple[str, str], ...]  # (node id, "connected"/"disconnected"/"localhost")


def parse_cfgtool(text: str) -> tuple[str, list[LinkStatus]]:
    """(local node id, links) from ``corosync-cfgtool -s``."""
    local = ""
    links: list[LinkStatus] = []
    link: int | None = None
    address = ""
    peers: list[tuple[str, str]] = []

    def close() -> None:
        if link is not None:
            links.append(LinkStatus(link, address, tuple(peers)))

    for line in text.splitlines():
        if m := _LOCAL.match(line):
            local = m.group(1)
        elif m := _LINK.match(line):
            close()
            link, address, peers = int(m.group(1)), "", []
        elif (m := _ADDR.match(line)) and link is not None:
            address = m.group(1)
        elif (m := _PEER.match(line)) and link is not None:
            peers.append((m.group(1), m.group(2)))
    close()
    return local, links


def parse_nodelist(text: str) -> dict[str, dict[str, str]]:
    """Node id → {name, ring0_addr, …} from ``corosync-cmapctl -b nodelist.node``."""
    by_index: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if not sep:
            continue
        parts = key.split(" ")[0].split(".")
        if len(parts) != 4 or parts[:2] != ["nodelist", "node"]:
            continue
        by_index.setdefault(parts[2], {})[parts[3]] = value.strip()
    return {n["nodeid"]: n for n in by_index.values() if "nodeid" in n}


def comm_paths(
    cfgtool: str, node_names: Mapping[str, str], nodelist: Mapping[str, Mapping[str, str]]
) -> tuple[CommPath, ...]:
    """The links of the local node to each peer (``node_names``: corosync id → name)."""
    local_id, links = parse_cfgtool(cfgtool)
    local = node_names.get(local_id, "")
    if not local:
        return ()
    paths = []
    for link in links:
        for peer_id, state in link.peers:
            if state == "localhost" or peer_id == local_id:
                continue
            peer = node_names.get(peer_id) or nodelist.get(peer_id, {}).get("name", "")
            if not peer:
                continue
            peer_address = nodelist.get(peer_id, {}).get(f"ring{link.link}_addr", "")
            paths.append(
                CommPath(
                    server=local,
                    peer=peer,
                    local_address=link.local_address,
                    peer_address=peer_address,
                    state=CommPathState.ALIVE if state == "connected" else CommPathState.DEAD,
                    priority=link.link + 1,
                )
            )
    return tuple(paths)


# -- the snapshot ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Everything a snapshot is made of (what the node's commands printed, parsed)."""

    crm_mon: ET.Element
    cib: ET.Element
    cfgtool: str = ""
    nodelist: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def cluster(sources: Sources) -> Cluster:
    """The :class:`~core.model.Cluster` that crm_mon and the CIB describe."""
    views = node_views(sources.crm_mon)
    names = {v.node_id: v.name for v in views}
    paths = comm_paths(sources.cfgtool, names, sources.nodelist) if sources.cfgtool else ()
    online = {v.name for v in views if v.online and not v.unclean}
    degraded = {
        end
        for p in paths
        if p.state is CommPathState.DEAD and p.server in online and p.peer in online
        for end in (p.server, p.peer)
    }
    servers = []
    for position, v in enumerate(views):
        state = v.state
        if state is ServerState.ALIVE and v.name in degraded:
            state = ServerState.ALIVE_WARNING
        servers.append(Server(v.name, state, position))
    resources = resource_views(sources.crm_mon.find("resources"))
    context = _Context(
        nodes={v.name: v for v in views},
        resources=resources,
        failures=_failures_by_key(failures(sources.crm_mon)),
        fail_counts=fail_counts(sources.crm_mon),
        maintenance=maintenance_mode(sources.crm_mon),
        attributes=status_dk.node_attributes(sources.crm_mon, sources.cib),
    )
    hierarchies = tuple(hierarchy(h, context) for h in cibxml.hierarchies(sources.cib) if h.members)
    return Cluster(tuple(servers), hierarchies, paths)


def _failures_by_key(found: Iterable[Failure]) -> dict[tuple[str, str], list[Failure]]:
    by_key: dict[tuple[str, str], list[Failure]] = {}
    for f in found:
        by_key.setdefault((f.xml_id, f.node), []).append(f)
    return by_key


@dataclass(frozen=True)
class _Context:
    nodes: Mapping[str, NodeView]
    resources: Mapping[str, ResourceView]
    failures: Mapping[tuple[str, str], list[Failure]]
    fail_counts: Mapping[tuple[str, str], int]
    maintenance: bool
    attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def version(h: HierarchyConfig, running: Mapping[str, Sequence[str]]) -> int:
    """``Hierarchy.version``: its configuration (``h.version``) and where it runs now.

    A change of either by anyone (another console, ``crm``, or Pacemaker's own failover)
    makes a plan made before it stale: "changed by someone else, reload"."""
    where = sorted({n for m in h.members for n in running.get(m.xml_id, ())})
    return cibxml.stable_int(f"{h.version}@{','.join(where)}")


def hierarchy(h: HierarchyConfig, context: _Context) -> Hierarchy:
    """One hierarchy: its resources on every server where it is defined or runs."""
    defined = [node for node, _priority in h.priorities if node in context.nodes]
    running = [
        node
        for m in h.members
        for node in (
            context.resources[m.xml_id].running_on if m.xml_id in context.resources else ()
        )
    ]
    servers = list(dict.fromkeys([*defined, *running]))
    resources = tuple(
        Resource(
            resource_id=m.resource_id,
            hierarchy_id=h.hierarchy_id,
            kind=m.kind,
            server=server,
            tag=m.tag,
            state=state,
            mount_point=m.param("directory") or None,
            fs_type=m.param("fstype") or None,
            volume=m.param("volume") or None if is_dk else None,
            bitmap_file=status_dk.bitmap_of(m, server) if is_dk else None,
            settings=m.settings,
            reason=reason,
        )
        for m in h.members
        for is_dk in (m.kind is ResourceKind.DATAKEEPER,)
        for server in servers
        for state, reason in (member_state(m, server, h, context),)
    )
    mirrors = tuple(
        found
        for m in h.members
        if m.kind is ResourceKind.DATAKEEPER
        for view in (context.resources.get(m.xml_id),)
        for found in (
            status_dk.mirror(
                m,
                view.promoted_on if view else (),
                context.attributes,
                view.running_on if view else (),
            ),
        )
        if found is not None
    )
    rid = {m.xml_id: m.resource_id for m in h.members}
    dependencies = tuple(
        Dependency(parent_id=rid[parent], child_id=rid[child])
        for child, parent in cib_tree.parents(h).items()
        if parent is not None
    )
    equivalencies = tuple(
        Equivalency(node, priority) for node, priority in h.priorities if node in context.nodes
    )
    return Hierarchy(
        id=h.hierarchy_id,
        switchback=h.switchback,
        version=version(h, {rid: v.running_on for rid, v in context.resources.items()}),
        root_id=h.root.resource_id,
        resources=resources,
        dependencies=dependencies,
        equivalencies=equivalencies,
        mirrors=mirrors,
        kinds={m.resource_id: m.kind for m in h.members},
    )


def member_state(
    m: Member, server: str, h: HierarchyConfig, context: _Context
) -> tuple[ResourceState, str]:
    """The state of one resource on one server, and why (when it is not the normal one)."""
    node = context.nodes.get(server)
    view = context.resources.get(m.xml_id)
    runs_here = view is not None and server in view.running_on
    if node is None or not node.online or node.unclean:
        if runs_here:
            return ResourceState.OSF, f"{server} is unclean: Pacemaker is fencing it"
        return ResourceState.UNKNOWN, f"{server} is down"
    failed = context.failures.get((m.xml_id, server), [])
    reason = "; ".join(f.text for f in failed)
    if view is not None and runs_here:
        if view.pending.lower() in ("starting", "promoting", "migrating"):
            return ResourceState.OSU, f"coming in service ({view.pending.lower()})"
        if view.pending.lower() in ("stopping", "demoting"):
            return ResourceState.ISU, f"going out of service ({view.pending.lower()})"
        if not view.managed or node.maintenance or context.maintenance:
            return ResourceState.ISU, "not managed by Pacemaker (maintenance or unmanaged)"
        if view.blocked:
            return ResourceState.ISU, reason or "blocked: Pacemaker will not act on it"
        if view.failed:
            return ResourceState.ISU, reason or "failed: Pacemaker is recovering it"
        if m.kind is ResourceKind.DATAKEEPER and server not in view.promoted_on:
            return ResourceState.OSU, ""  # a mirror's target
        if len(view.running_on) > 1 and m.kind is not ResourceKind.DATAKEEPER:
            return ResourceState.ISU, f"active on {', '.join(view.running_on)} at once"
        return ResourceState.ISP, f"{RECOVERED}{reason}" if reason else ""
    count = context.fail_counts.get((m.xml_id, server), 0)
    if failed or count > 0:
        if not reason:
            reason = f"fail-count {count} on {server}"
        return ResourceState.OSF, reason
    if h.stopped:
        return ResourceState.OSU, "out of service (target-role Stopped)"
    return ResourceState.OSU, ""


RECOVERED = "recovered after: "  # the reason of a resource Pacemaker restarted in place


def changes(old: Cluster, new: Cluster) -> list[tuple[str, str]]:
    """What Pacemaker (or anyone) changed between two snapshots, in LifeKeeper's words:
    (level, line) for the output panel: servers, where hierarchies are in service, new
    failures."""
    lines: list[tuple[str, str]] = []
    for s in new.servers:
        before = old.server(s.name)
        if before is not None and before.state != s.state:
            level = "INFO" if s.state is ServerState.ALIVE else "WARNING"
            lines.append((level, f"{s.name} is {s.state.label} (was {before.state.label})"))
    for h in new.hierarchies:
        was = old.hierarchy(h.id)
        if was is None:
            continue
        now_on, was_on = h.in_service_server, was.in_service_server
        if now_on != was_on:
            if now_on is None:
                lines.append(
                    ("WARNING", f"{h.root_tag} is out of service (was in service on {was_on})")
                )
            else:
                since = f"was in service on {was_on}" if was_on else "was out of service"
                lines.append(("INFO", f"{h.root_tag} is in service on {now_on} ({since})"))
        for r in h.resources:
            before_r = was.instance(r.resource_id, r.server)
            if r.state is ResourceState.OSF:
                if before_r is None or before_r.state is not ResourceState.OSF:
                    lines.append(("WARNING", f"{r.tag} failed on {r.server}: {r.reason}"))
            elif r.reason.startswith(RECOVERED) and (
                before_r is None or before_r.reason != r.reason
            ):  # restarted in place (local recovery): the failure would otherwise go unsaid
                after = r.reason.removeprefix(RECOVERED)
                lines.append(("WARNING", f"{r.tag} was recovered on {r.server} after: {after}"))
    return lines


__all__ = [
    "Failure",
    "LinkStatus",
    "NodeView",
    "ResourceView",
    "Sources",
    "StatusError",
    "changes",
    "cluster",
    "comm_paths",
    "fail_counts",
    "failures",
    "hierarchy",
    "member_state",
    "node_views",
    "parse_cfgtool",
    "parse_crm_mon",
    "parse_nodelist",
    "placements",
    "quorate",
    "resource_views",
    "version",
]
