"""When an action of the console applies, and why not: business rules, no Qt.

Every action of the console's menus, toolbar and context menus is named here (the same
name is the QAction's objectName). :func:`availability` says, for a cluster, what the
user selected and the session, whether each action is enabled, with a sentence that
is either what the action will do or why it cannot be done now (shown as the action's
tooltip). :func:`preselection` says which fields a dialog opened from that selection
starts with (template server, tag, target server...).

A selection is one of: nothing, a server (a column header), a resource (a row of the
status tree) or a cell (a resource on one server).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core import permissions
from core.capabilities import (
    COMM_PATHS,
    DEPENDENCIES,
    FILESYSTEM_GROW,
    MIRROR_RESIZE,
    SERVER_POWER,
)
from core.model import (
    Cluster,
    Hierarchy,
    Mirror,
    MirrorState,
    MirrorTarget,
    ResourceKind,
    Role,
    Server,
)
from core.permissions import Op

CONNECT = "connect"
DISCONNECT = "disconnect"
SERVER_PROPERTIES = "server_properties"
STOP_SERVER = "stop_server"
START_SERVER = "start_server"
CREATE_HIERARCHY = "create_hierarchy"
EXTEND_HIERARCHY = "extend_hierarchy"
UNEXTEND_HIERARCHY = "unextend_hierarchy"
DELETE_HIERARCHY = "delete_hierarchy"
IN_SERVICE = "in_service"
OUT_OF_SERVICE = "out_of_service"
RESOURCE_PROPERTIES = "resource_properties"
PAUSE_MIRROR = "pause_mirror"
RESUME_MIRROR = "resume_mirror"
FULL_RESYNC = "full_resync"
FORCE_ONLINE = "force_online"
SPEED_LIMIT = "speed_limit"
VERIFY_MIRROR = "verify_mirror"
MIRROR_ACTIONS = (
    PAUSE_MIRROR,
    RESUME_MIRROR,
    FULL_RESYNC,
    FORCE_ONLINE,
    SPEED_LIMIT,
    VERIFY_MIRROR,
)

CREATE_DEPENDENCY = "create_dependency"
DELETE_DEPENDENCY = "delete_dependency"

ACTIONS: tuple[str, ...] = (
    CONNECT,
    DISCONNECT,
    SERVER_PROPERTIES,
    STOP_SERVER,
    START_SERVER,
    CREATE_HIERARCHY,
    EXTEND_HIERARCHY,
    UNEXTEND_HIERARCHY,
    DELETE_HIERARCHY,
    IN_SERVICE,
    OUT_OF_SERVICE,
    RESOURCE_PROPERTIES,
    *MIRROR_ACTIONS,
    CREATE_DEPENDENCY,
    DELETE_DEPENDENCY,
    "create_comm_path",
    "delete_comm_path",
    "confirm_failover",
)


@dataclass(frozen=True)
class Selection:
    """What the user pointed at: a server, a resource (row), or a cell (both)."""

    server: str | None = None
    hierarchy_id: int | None = None
    resource_id: int | None = None

    def __post_init__(self) -> None:
        if (self.hierarchy_id is None) != (self.resource_id is None):
            raise ValueError("a resource selection needs both hierarchy_id and resource_id")

    @property
    def kind(self) -> str:
        """ "none", "server", "resource" or "cell"."""
        if self.resource_id is None:
            return "none" if self.server is None else "server"
        return "resource" if self.server is None else "cell"


@dataclass(frozen=True)
class Connection:
    """The console's connection: to which cluster, with which role."""

    connected: bool = True
    role: Role = Role.ADMINISTRATOR
    cluster_name: str = "lab"  # "the {cluster_name} cluster"
    # What the backend can do beyond the common set (core.capabilities).
    capabilities: frozenset[str] = frozenset({SERVER_POWER, DEPENDENCIES, MIRROR_RESIZE})


@dataclass(frozen=True)
class Availability:
    """Whether an action is enabled; ``reason`` says what it does, or why not."""

    enabled: bool
    reason: str


@dataclass(frozen=True)
class Preselection:
    """The fields a dialog opened from a selection starts with.

    ``server`` is the server the action applies to: the server to stop, start or show;
    the server to bring in or out of service or to unextend from; for Create the server
    to create on. For Extend, ``template_server`` and ``tag`` are the template server
    and the tag to extend (the selected resource's tag on the template server), and
    ``target_server`` the clicked cell's server when it lacks the hierarchy.
    """

    hierarchy_id: int | None = None
    resource_id: int | None = None
    tag: str | None = None
    root_tag: str | None = None
    template_server: str | None = None
    target_server: str | None = None
    server: str | None = None
    version: int | None = None


def _ok(reason: str) -> Availability:
    return Availability(True, reason)


def _no(reason: str) -> Availability:
    return Availability(False, reason)


def _names(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(names)


# -- common preconditions ----------------------------------------------------------------
def _connection_problem(
    cluster: Cluster | None, connection: Connection, op: Op
) -> Availability | None:
    """Not connected, or the permission table does not let this role run ``op``."""
    if not connection.connected or cluster is None:
        return _no("Not connected to a cluster: use File › Connect first.")
    if not permissions.allowed(connection.role, op):
        needed = permissions.least_role(op)
        return _no(
            f"Your role is {connection.role.label}; {op.label} needs the {needed.label} role. "
            "Reconnect with a role that allows it."
        )
    return None


def _selected_server(cluster: Cluster, selection: Selection) -> Server | Availability:
    if selection.server is None:
        return _no("Select a server first: click its column header or a cell in its column.")
    server = cluster.server(selection.server)
    if server is None:
        return _no(f"There is no server {selection.server} in the cluster any more.")
    return server


def _selected_hierarchy(cluster: Cluster, selection: Selection) -> Hierarchy | Availability:
    if selection.hierarchy_id is None or selection.resource_id is None:
        return _no("Select a resource first: click a resource or a cell in the status table.")
    h = cluster.hierarchy(selection.hierarchy_id)
    if h is None or selection.resource_id not in h.resource_ids():
        return _no("The selected resource no longer exists; select another one.")
    return h


def _tag(h: Hierarchy, resource_id: int, server: str | None = None) -> str:
    if server is not None:
        inst = h.instance(resource_id, server)
        if inst is not None:
            return inst.tag
    return h.tag_of(resource_id)


def _server_state(cluster: Cluster, name: str) -> str:
    server = cluster.server(name)
    return server.state.value if server is not None else "not in the cluster"


# -- the rules -----------------------------------------------------------------------------
def connect(cluster: Cluster | None, selection: Selection, connection: Connection) -> Availability:
    if connection.connected:
        return _no(f"Already connected to the {connection.cluster_name} cluster.")
    return _ok(f"Connect to the {connection.cluster_name} cluster.")


def disconnect(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    if not connection.connected:
        return _no("Not connected to a cluster.")
    return _ok(f"Disconnect from the {connection.cluster_name} cluster.")


def server_properties(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.VIEW)
    if problem is not None:
        return problem
    assert cluster is not None
    server = _selected_server(cluster, selection)
    if isinstance(server, Availability):
        return server
    return _ok(f"Show the properties of server {server.name}.")


def stop_server(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.STOP_SERVER)
    if problem is not None:
        return problem
    assert cluster is not None
    if SERVER_POWER not in connection.capabilities:
        return _no(
            "This cluster's servers are real machines: stop one from the machine itself "
            "(the lab clusters can simulate it)."
        )
    server = _selected_server(cluster, selection)
    if isinstance(server, Availability):
        return server
    if not server.state.is_alive:
        return _no(f"{server.name} is not running ({server.state.value}); use Start Server.")
    return _ok(
        f"Stop {server.name} as if it crashed: its in-service hierarchies fail over to "
        "the best standby server."
    )


def start_server(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.START_SERVER)
    if problem is not None:
        return problem
    assert cluster is not None
    if SERVER_POWER not in connection.capabilities:
        return _no(
            "This cluster's servers are real machines: start one from the machine itself "
            "(the lab clusters can simulate it)."
        )
    server = _selected_server(cluster, selection)
    if isinstance(server, Availability):
        return server
    if server.state.is_alive:
        return _no(f"{server.name} is already running ({server.state.value}).")
    return _ok(f"Start {server.name}; its mirrors resync from their sources.")


def create_hierarchy(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.CREATE_HIERARCHY)
    if problem is not None:
        return problem
    assert cluster is not None
    alive = [s.name for s in cluster.servers if s.state.is_alive]
    if not alive:
        return _no("No server is alive: start one first (Edit › Server › Start Server).")
    where = _create_server(cluster, selection) or alive[0]
    return _ok(f"Create a new resource hierarchy (on {where}).")


def _create_server(cluster: Cluster, selection: Selection) -> str | None:
    if selection.server is None:
        return None
    server = cluster.server(selection.server)
    return server.name if server is not None and server.state.is_alive else None


def extend_hierarchy(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.EXTEND_HIERARCHY)
    if problem is not None:
        return problem
    assert cluster is not None
    if selection.resource_id is None:
        return _extend_any(cluster)
    h = _selected_hierarchy(cluster, selection)
    if isinstance(h, Availability):
        return h
    return _extend_from(cluster, h, selection.server)


def _extend_any(cluster: Cluster) -> Availability:
    """No resource selected: the wizard asks for the template server and the tag."""
    if not cluster.hierarchies:
        return _no(
            "There is no resource hierarchy to extend yet: create one first "
            "(Edit › Resource › Create Resource Hierarchy)."
        )
    # What _extend_from enables, without its sentences: this runs for every hierarchy at
    # each update while nothing is selected.
    alive = {s.name for s in cluster.servers if s.state.is_alive}
    if any(
        h.in_service_server in alive and alive - {e.server for e in h.equivalencies}
        for h in cluster.hierarchies
    ):
        return _ok(
            "Extend a resource hierarchy: the wizard asks for the template server and the "
            "tag to extend."
        )
    if len(cluster.hierarchies) == 1:
        return _extend_from(cluster, cluster.hierarchies[0], None)
    return _no(
        f"None of the {len(cluster.hierarchies)} resource hierarchies can be extended now; "
        "select one to see why."
    )


def _extend_from(cluster: Cluster, h: Hierarchy, server: str | None) -> Availability:
    root = h.root_tag
    template = h.in_service_server
    if template is None:
        return _no(
            f"{root} is not in service on any server; bring it in service first: Extend "
            "copies a hierarchy from the server where it is in service."
        )
    if not _alive(cluster, template):
        return _no(
            f"The template server {template} is {_server_state(cluster, template)}; "
            "start it before extending."
        )
    missing = [s.name for s in cluster.servers if s.name not in h.servers]
    if not missing:
        return _no(
            f"There is no server left to extend {root} to: it is already defined on every "
            f"server ({_names(h.servers)})."
        )
    alive = [name for name in missing if _alive(cluster, name)]
    if not alive:
        verb = "is" if len(missing) == 1 else "are"
        return _no(
            f"There is no alive server to extend {root} to: {_names(missing)} {verb} not "
            "running. Start one first."
        )
    target = server if server in alive else None
    to = target or (alive[0] if len(alive) == 1 else f"one of {_names(alive)}")
    return _ok(f"Extend {root} from {template} to {to}.")


def unextend_hierarchy(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.UNEXTEND_HIERARCHY)
    if problem is not None:
        return problem
    assert cluster is not None
    h = _selected_hierarchy(cluster, selection)
    if isinstance(h, Availability):
        return h
    root = h.root_tag
    defined = h.servers
    if len(defined) <= 1:
        return _no(
            f"{root} is defined only on {_names(defined)}; Unextend removes a hierarchy from "
            "one of several servers. Use Delete Resource Hierarchy to remove it completely."
        )
    active = h.in_service_server
    if selection.server is not None:
        server = selection.server
        if server not in defined:
            return _no(f"{root} is not defined on {server}; there is nothing to unextend there.")
        if server == active:
            return _no(
                f"{root} is in service on {server}; bring it in service on another server "
                f"(or take it out of service) before unextending it from {server}."
            )
        return _ok(
            f"Remove {root} from {server} (its mirror target and bitmap there; the data "
            "volume is kept)."
        )
    removable = [s for s in defined if s != active]
    return _ok(f"Remove {root} from one of {_names(removable)}.")


def delete_hierarchy(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.DELETE_HIERARCHY)
    if problem is not None:
        return problem
    assert cluster is not None
    h = _selected_hierarchy(cluster, selection)
    if isinstance(h, Availability):
        return h
    return _ok(f"Remove {h.root_tag} and its resources from every server ({_names(h.servers)}).")


def in_service(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.IN_SERVICE)
    if problem is not None:
        return problem
    assert cluster is not None
    h = _selected_hierarchy(cluster, selection)
    if isinstance(h, Availability):
        return h
    assert selection.resource_id is not None
    rid = selection.resource_id
    server = _in_service_server(h, selection)
    tag = _tag(h, rid, server)
    inst = h.instance(rid, server)
    if inst is None:
        return _no(f"{tag} is not defined on {server}; extend the hierarchy to {server} first.")
    if inst.state.in_service:
        hint = "" if selection.server else "; to switch it over, select its cell on another server"
        return _no(f"{tag} is already in service on {server}{hint}.")
    if not _alive(cluster, server):
        return _no(f"{server} is {_server_state(cluster, server)}; start it first.")
    elsewhere = sorted({r.server for r in h.resources if r.state.in_service and r.server != server})
    scope = h.resource_ids() if elsewhere else [r for r, _depth in h.walk(rid)]
    refusal = _mirror_refusal(h, scope, server, tag)
    if refusal is not None:
        return refusal
    if elsewhere:
        return _ok(f"Switch {tag} over from {_names(elsewhere)} to {server}.")
    return _ok(f"Bring {tag} in service on {server} (the resources it depends on first).")


def _in_service_server(h: Hierarchy, selection: Selection) -> str:
    """The server In Service applies to: the clicked one, else the best-priority one."""
    if selection.server is not None:
        return selection.server
    return h.home_server


def _mirror_refusal(h: Hierarchy, scope: list[int], server: str, tag: str) -> Availability | None:
    """Refuse bringing DataKeeper resources in service where their copy is not a Target."""
    for rid in scope:
        if h.kind_of(rid) is not ResourceKind.DATAKEEPER:
            continue
        mirror = h.mirror(rid)
        if mirror is None or mirror.source == server:
            continue
        dk = _tag(h, rid, mirror.source)
        target = mirror.target(server)
        if target is None:
            return _no(f"The mirror {dk} has no target on {server}; extend to {server} first.")
        if target.state is MirrorState.RESYNCING:
            return _no(
                f"The mirror {dk} is still resyncing to {server} ({target.percent} %); "
                f"{tag} cannot be brought in service on {server} until its state is Target."
            )
        if target.state is MirrorState.OUT_OF_SYNC:
            why = f" ({target.reason})" if target.reason else ""
            return _no(
                f"The mirror {dk} is Out of Sync on {server}{why}; resync it (Target) before "
                f"bringing {tag} in service there."
            )
        if target.state is MirrorState.WAIT_FOR_PREVIOUS_SOURCE:
            return _no(
                f"The copy of {dk} on {server} may be stale (Wait for Previous Source): bring "
                f"{tag} in service on {mirror.source}, or force the mirror online."
            )
    return None


def out_of_service(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.OUT_OF_SERVICE)
    if problem is not None:
        return problem
    assert cluster is not None
    h = _selected_hierarchy(cluster, selection)
    if isinstance(h, Availability):
        return h
    assert selection.resource_id is not None
    rid = selection.resource_id
    server = _out_of_service_server(h, selection)
    if server is None:
        return _no(f"{h.tag_of(rid)} is not in service on any server.")
    tag = _tag(h, rid, server)
    inst = h.instance(rid, server)
    if inst is None:
        return _no(f"{tag} is not defined on {server}.")
    if not inst.state.in_service:
        return _no(f"{tag} is not in service on {server} ({inst.state.cell_text}).")
    return _ok(f"Take {tag} out of service on {server} (the resources that depend on it first).")


def _out_of_service_server(h: Hierarchy, selection: Selection) -> str | None:
    if selection.server is not None:
        return selection.server
    assert selection.resource_id is not None
    return next(
        (
            r.server
            for r in h.resources
            if r.resource_id == selection.resource_id and r.state.in_service
        ),
        None,
    )


def resource_properties(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.VIEW)
    if problem is not None:
        return problem
    assert cluster is not None
    h = _selected_hierarchy(cluster, selection)
    if isinstance(h, Availability):
        return h
    assert selection.resource_id is not None
    tag = _tag(h, selection.resource_id, selection.server)
    where = f" on {selection.server}" if selection.server else ""
    return _ok(f"Show the properties of {tag}{where}.")


def _alive(cluster: Cluster, name: str) -> bool:
    server = cluster.server(name)
    return server is not None and server.state.is_alive


Rule = Callable[[Cluster | None, Selection, Connection], Availability]

# -- mirror actions (a DataKeeper resource, or a cell of one) ------------------------------
PAUSED = "paused by the administrator"  # core.mirror_ops.PAUSED_REASON


def _selected_mirror(
    cluster: Cluster | None, selection: Selection, connection: Connection, op: Op
) -> tuple[Hierarchy, Mirror, list[MirrorTarget]] | Availability:
    """The mirror of the selected DataKeeper resource and the targets the action concerns
    (the clicked cell's server when it is a target, else every target)."""
    found = _selected_datakeeper(cluster, selection, connection, op)
    if isinstance(found, Availability):
        return found
    h, mirror = found
    if not mirror.targets:
        return _no(
            f"{h.tag_of(mirror.resource_id)} has no mirror target yet: extend the hierarchy first."
        )
    if selection.server is not None and selection.server != mirror.source:
        target = mirror.target(selection.server)
        if target is None:
            return _no(f"{selection.server} is not a target of {h.tag_of(mirror.resource_id)}.")
        return h, mirror, [target]
    return h, mirror, list(mirror.targets)


def pause_mirror(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    found = _selected_mirror(cluster, selection, connection, Op.PAUSE_MIRROR)
    if isinstance(found, Availability):
        return found
    h, mirror, targets = found
    tag = h.tag_of(mirror.resource_id)
    active = [t.server for t in targets if t.reason != PAUSED]
    if not active:
        return _no(
            f"The mirror of {tag} to {_names([t.server for t in targets])} is already paused."
        )
    return _ok(
        f"Pause the mirror of {tag} to {_names(active)}: writes are only recorded in "
        "the bitmap until it is resumed."
    )


def resume_mirror(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    found = _selected_mirror(cluster, selection, connection, Op.RESUME_MIRROR)
    if isinstance(found, Availability):
        return found
    h, mirror, targets = found
    tag = h.tag_of(mirror.resource_id)
    behind = [t.server for t in targets if t.state in (MirrorState.OUT_OF_SYNC,)]
    if not behind:
        waiting = [t.server for t in targets if t.state is MirrorState.WAIT_FOR_PREVIOUS_SOURCE]
        if waiting:
            return _no(
                f"{_names(waiting)} waits for the previous source; use Force Online "
                "if you are sure."
            )
        return _no(f"The mirror of {tag} is not stopped: nothing to resume.")
    return _ok(
        f"Resume the mirror of {tag} to {_names(behind)}: resync what it missed (from the bitmap)."
    )


def full_resync(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    found = _selected_mirror(cluster, selection, connection, Op.FULL_RESYNC)
    if isinstance(found, Availability):
        return found
    h, mirror, targets = found
    servers = [t.server for t in targets if t.state is not MirrorState.WAIT_FOR_PREVIOUS_SOURCE]
    if not servers:
        return _no("Those copies wait for the previous source: use Force Online first.")
    return _ok(f"Copy every chunk of {h.tag_of(mirror.resource_id)} again to {_names(servers)}.")


def force_online(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    found = _selected_mirror(cluster, selection, connection, Op.FORCE_ONLINE)
    if isinstance(found, Availability):
        return found
    h, mirror, targets = found
    waiting = [t.server for t in targets if t.state is MirrorState.WAIT_FOR_PREVIOUS_SOURCE]
    if not waiting:
        return _no(
            "Force Online is only for a copy that waits for the previous source "
            "(after both sides crashed)."
        )
    return _ok(
        f"Bring the copy of {h.tag_of(mirror.resource_id)} on {waiting[0]} online "
        "although it may be stale."
    )


def speed_limit(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    found = _selected_datakeeper(cluster, selection, connection, Op.SPEED_LIMIT)
    if isinstance(found, Availability):
        return found
    h, mirror = found
    shown = "unlimited" if mirror.speed_limit_kbps == 0 else f"{mirror.speed_limit_kbps} KB/s"
    return _ok(f"Set the resync speed limit of {h.tag_of(mirror.resource_id)} (now {shown}).")


def verify_mirror(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    found = _selected_mirror(cluster, selection, connection, Op.VERIFY_MIRROR)
    if isinstance(found, Availability):
        return found
    h, mirror, targets = found
    tag = h.tag_of(mirror.resource_id)
    busy = [t.server for t in targets if t.state is MirrorState.RESYNCING]
    if busy:
        return _no(
            f"A resync of {tag} to {_names(busy)} is running: verify it once the resync is done."
        )
    if any(t.verify_percent is not None for t in targets):
        return _no(f"A verify of {tag} is already running.")
    return _ok(
        f"Compare {tag} on {_names([t.server for t in targets])} with the source chunk "
        "by chunk, and mark what differs for a resync."
    )


# -- dependencies (Create Dependency, Delete Dependency) ---------------------------------------
_NO_DEPENDENCIES = (
    "{what} is not available on this cluster yet: its backend cannot make one hierarchy "
    "depend on another (the folder lab can)."
)


def _dependency_server(h: Hierarchy, selection: Selection) -> str:
    """The server whose resources a dependency is chosen from: the clicked cell's, else
    where the hierarchy is in service (else its best-priority server)."""
    if selection.server is not None and selection.server in h.servers:
        return selection.server
    return h.home_server


def _a_server_has_two_resources(cluster: Cluster) -> bool:
    """Whether some server has two resources (of any hierarchies): stops at the first
    one found, as the menus ask it on every change of a large cluster."""
    seen: set[str] = set()
    for h in cluster.hierarchies:
        for r in h.resources:
            if r.server in seen:
                return True
            seen.add(r.server)
    return False


def create_dependency(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.CREATE_DEPENDENCY)
    if problem is not None:
        return problem
    if DEPENDENCIES not in connection.capabilities:
        return _no(_NO_DEPENDENCIES.format(what="Create Dependency"))
    assert cluster is not None
    if selection.resource_id is None:
        if not _a_server_has_two_resources(cluster):
            return _no("No server has two resources: create another resource hierarchy first.")
        return _ok("Make one resource depend on another resource of the same server.")
    h = _selected_hierarchy(cluster, selection)
    if isinstance(h, Availability):
        return h
    # Only the selected hierarchy is read here (gui.actions.context): the dialog offers
    # the other resources of the server, and says why one cannot be the child.
    server = _dependency_server(h, selection)
    tag = _tag(h, selection.resource_id, server)
    return _ok(f"Make {tag} depend on another resource of {server} (its child).")


def delete_dependency(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.DELETE_DEPENDENCY)
    if problem is not None:
        return problem
    if DEPENDENCIES not in connection.capabilities:
        return _no(_NO_DEPENDENCIES.format(what="Delete Dependency"))
    assert cluster is not None
    if selection.resource_id is None:
        if not any(h.dependencies for h in cluster.hierarchies):
            return _no("No resource depends on another: there is no dependency to delete.")
        return _ok("Make a resource no longer depend on one of its children.")
    h = _selected_hierarchy(cluster, selection)
    if isinstance(h, Availability):
        return h
    rid = selection.resource_id
    tag = _tag(h, rid, _dependency_server(h, selection))
    children = [h.tag_of(c) for c in h.children(rid)]
    parent = h.parent(rid)
    if children:
        return _ok(f"{tag} no longer depends on one of: {_names(children)}.")
    if parent is not None:
        return _ok(f"{h.tag_of(parent)} no longer depends on {tag}.")
    return _no(f"{tag} depends on nothing and nothing depends on it: no dependency to delete.")


# -- comm paths and failover confirmation -------------------------------------------------
CREATE_COMM_PATH = "create_comm_path"
DELETE_COMM_PATH = "delete_comm_path"
CONFIRM_FAILOVER = "confirm_failover"


def _comm_path_problem(
    cluster: Cluster | None, connection: Connection, op: Op
) -> Availability | None:
    problem = _connection_problem(cluster, connection, op)
    if problem is not None or COMM_PATHS in connection.capabilities:
        return problem
    return _no(
        "This cluster's comm paths are its Corosync links: change them in corosync.conf "
        "on the nodes."
    )


def create_comm_path(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _comm_path_problem(cluster, connection, Op.CREATE_COMM_PATH)
    if problem is not None:
        return problem
    assert cluster is not None
    if len(cluster.servers) < 2:
        return _no("A comm path joins two servers; this cluster has only one.")
    where = f" from {selection.server}" if selection.server is not None else ""
    return _ok(f"Create a comm path{where} to another server (a pair of addresses).")


def delete_comm_path(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _comm_path_problem(cluster, connection, Op.DELETE_COMM_PATH)
    if problem is not None:
        return problem
    assert cluster is not None
    server = selection.server
    paths = [p for p in cluster.comm_paths if server is None or p.server == server]
    if not paths:
        where = f" of {server}" if server is not None else ""
        return _no(f"There is no comm path{where} to delete: create one first.")
    where = f" of {server}" if server is not None else ""
    return _ok(f"Delete a comm path{where} ({len(paths) if server else len(paths) // 2} now).")


def confirm_failover(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    problem = _connection_problem(cluster, connection, Op.CONFIRM_FAILOVER)
    if problem is not None:
        return problem
    assert cluster is not None
    waiting = cluster.pending_failovers
    if not waiting:
        return _no(
            "No failover waits for a confirmation (Server Properties › Failover "
            "Confirmation makes a server ask for one)."
        )
    shown = "; ".join(f"{p.root_tag} from {p.from_server} to {p.to_server}" for p in waiting)
    return _ok(f"Confirm or block the failover waiting for you: {shown}.")


RULES: dict[str, Rule] = {
    CONNECT: connect,
    DISCONNECT: disconnect,
    SERVER_PROPERTIES: server_properties,
    STOP_SERVER: stop_server,
    START_SERVER: start_server,
    CREATE_HIERARCHY: create_hierarchy,
    EXTEND_HIERARCHY: extend_hierarchy,
    UNEXTEND_HIERARCHY: unextend_hierarchy,
    DELETE_HIERARCHY: delete_hierarchy,
    IN_SERVICE: in_service,
    OUT_OF_SERVICE: out_of_service,
    RESOURCE_PROPERTIES: resource_properties,
    PAUSE_MIRROR: pause_mirror,
    RESUME_MIRROR: resume_mirror,
    FULL_RESYNC: full_resync,
    FORCE_ONLINE: force_online,
    SPEED_LIMIT: speed_limit,
    VERIFY_MIRROR: verify_mirror,
    CREATE_DEPENDENCY: create_dependency,
    DELETE_DEPENDENCY: delete_dependency,
    CREATE_COMM_PATH: create_comm_path,
    DELETE_COMM_PATH: delete_comm_path,
    CONFIRM_FAILOVER: confirm_failover,
}


def availability(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> dict[str, Availability]:
    """Every action of :data:`ACTIONS`: enabled or not, and the sentence saying why."""
    return {name: rule(cluster, selection, connection) for name, rule in RULES.items()}


# -- preselection ----------------------------------------------------------------------
def preselection(cluster: Cluster | None, selection: Selection, action: str) -> Preselection:
    """The fields the dialog of ``action`` starts with, for what the user selected."""
    if cluster is None:
        return Preselection(server=selection.server)
    if action in (CREATE_HIERARCHY,):
        return Preselection(server=_create_server(cluster, selection))
    h = cluster.hierarchy(selection.hierarchy_id) if selection.hierarchy_id is not None else None
    if h is None or selection.resource_id is None:
        return Preselection(server=selection.server)
    rid = selection.resource_id
    template = h.in_service_server or h.home_server
    server: str | None = selection.server
    target: str | None = None
    if action == EXTEND_HIERARCHY:
        target = server if server is not None and server not in h.servers else None
    elif action == IN_SERVICE:
        server = _in_service_server(h, selection)
    elif action == OUT_OF_SERVICE:
        server = _out_of_service_server(h, selection)
    elif action in (CREATE_DEPENDENCY, DELETE_DEPENDENCY):
        server = _dependency_server(h, selection)
        template = server
    return Preselection(
        hierarchy_id=h.id,
        resource_id=rid,
        tag=_tag(h, rid, template),
        root_tag=h.root_tag,
        template_server=template,
        target_server=target,
        server=server,
        version=h.version,
    )


# -- issue 16: Resize Mirror and View › Log ---------------------------------------------
RESIZE_MIRROR = "resize_mirror"
SHOW_LOG = "show_log"


def _selected_datakeeper(
    cluster: Cluster | None, selection: Selection, connection: Connection, op: Op
) -> tuple[Hierarchy, Mirror] | Availability:
    """The selected DataKeeper resource's hierarchy and mirror, when ``op`` may run."""
    problem = _connection_problem(cluster, connection, op)
    if problem is not None:
        return problem
    assert cluster is not None
    h = _selected_hierarchy(cluster, selection)
    if isinstance(h, Availability):
        return h
    assert selection.resource_id is not None
    mirror = h.mirror(selection.resource_id)
    if mirror is None:
        return _no(
            f"{h.tag_of(selection.resource_id)} is not a DataKeeper resource: select "
            "the DataKeeper resource (or one of its cells) for mirror actions."
        )
    return h, mirror


NO_RESIZE = (
    "Resize Mirror is not available on this cluster yet: its backend cannot grow {tag}'s "
    "volume on every server under a running mirror (the folder lab can)."
)


def resize_mirror(
    cluster: Cluster | None, selection: Selection, connection: Connection
) -> Availability:
    """Grow the selected mirror: every copy's server must be up (they grow together)."""
    found = _selected_datakeeper(cluster, selection, connection, Op.RESIZE_MIRROR)
    if isinstance(found, Availability):
        return found
    assert cluster is not None
    h, mirror = found
    tag = h.tag_of(mirror.resource_id)
    if MIRROR_RESIZE not in connection.capabilities:
        return _no(NO_RESIZE.format(tag=tag))
    servers = [mirror.source, *(t.server for t in mirror.targets)]
    down = [s for s in servers if not _alive(cluster, s)]
    if down:
        return _no(
            f"{_names(down)} {'is' if len(down) == 1 else 'are'} down: every copy of {tag} "
            "must grow together."
        )
    waiting = [t.server for t in mirror.targets if t.state is MirrorState.WAIT_FOR_PREVIOUS_SOURCE]
    if waiting:
        return _no(f"The copy of {tag} on {_names(waiting)} waits for the previous source.")
    offline = ""
    if FILESYSTEM_GROW in connection.capabilities:
        if h.in_service_server != mirror.source:
            return _no(
                f"{h.root_tag} is not in service on {mirror.source}: bring it in service "
                f"first (the mirror grows from its source)."
            )
        offline = f"; {h.root_tag} is out of service meanwhile"
    return _ok(
        f"Grow {tag} on {_names(servers)} (the targets first, then the source); the new "
        f"space is resynced{offline}."
    )


def show_log(cluster: Cluster | None, selection: Selection, connection: Connection) -> Availability:
    """View › Log: the log of the selected server (or of the selected hierarchy's)."""
    problem = _connection_problem(cluster, connection, Op.VIEW)
    if problem is not None:
        return problem
    server = selection.server or "a server"
    return _ok(
        f"Show the log of {server}: operations, resource actions, state changes, failovers, live."
    )


ACTIONS = (*ACTIONS, RESIZE_MIRROR, SHOW_LOG)
RULES[RESIZE_MIRROR] = resize_mirror
RULES[SHOW_LOG] = show_log
