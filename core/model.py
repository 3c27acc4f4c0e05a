"""The domain of DOMAIN.md as frozen values and enums.

A *resource* is one logical member of a hierarchy (a row of the status tree); its
*instance* on one server (an :class:`Resource` value) has the tag, the state and the
server-side settings. A :class:`Hierarchy` snapshot carries everything about one
hierarchy, read from the store in one transaction, with the version used for
optimistic locking.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field


class ServerState(enum.Enum):
    """State of a cluster node, as shown in a column header."""

    ALIVE = "ALIVE"
    ALIVE_WARNING = "ALIVE (warning)"
    ALIVE_STANDBY = "ALIVE (standby)"  # up, but takes no resources (Pacemaker's standby)
    DEAD = "DEAD"
    UNKNOWN = "UNKNOWN"

    @property
    def label(self) -> str:
        return self.value

    @property
    def is_alive(self) -> bool:
        return self in (ServerState.ALIVE, ServerState.ALIVE_WARNING, ServerState.ALIVE_STANDBY)


class NodeStatus(enum.IntEnum):
    """Summary of a tree node: the worst state of it and its children (higher = worse)."""

    NORMAL = 0
    WARNING = 1
    UNKNOWN = 2
    FAILED = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()


class ResourceState(enum.Enum):
    """State of one resource on one server, as shown in a status-tree cell."""

    ISP = "In Service, Protected"
    ISU = "In Service, Unprotected"
    OSU = "Out of Service, Unimpaired"
    OSF = "Out of Service, Failed"
    ILLSTATE = "Illegal State"
    UNKNOWN = "Unknown"

    @property
    def cell_text(self) -> str:
        return _CELL_TEXT[self]

    @property
    def in_service(self) -> bool:
        return self in (ResourceState.ISP, ResourceState.ISU)

    @property
    def status(self) -> NodeStatus:
        return _STATUS[self]


_CELL_TEXT = {
    ResourceState.ISP: "Active",
    ResourceState.ISU: "Degraded",
    ResourceState.OSU: "Standby",
    ResourceState.OSF: "Failed",
    ResourceState.ILLSTATE: "Unknown",
    ResourceState.UNKNOWN: "Unknown",
}
_STATUS = {
    ResourceState.ISP: NodeStatus.NORMAL,
    ResourceState.ISU: NodeStatus.WARNING,
    ResourceState.OSU: NodeStatus.NORMAL,
    ResourceState.OSF: NodeStatus.FAILED,
    ResourceState.ILLSTATE: NodeStatus.UNKNOWN,
    ResourceState.UNKNOWN: NodeStatus.UNKNOWN,
}


class ResourceKind(enum.Enum):
    """The resource kinds this console knows (LifeKeeper's recovery kits)."""

    DATAKEEPER = "datakeeper"
    FILESYSTEM = "filesystem"
    IP = "ip"
    APP = "app"

    @property
    def label(self) -> str:
        return _KIND_LABEL[self]


_KIND_LABEL = {
    ResourceKind.DATAKEEPER: "DataKeeper (replicated volume)",
    ResourceKind.FILESYSTEM: "File System",
    ResourceKind.IP: "IP Address",
    ResourceKind.APP: "Generic Application",
}


class SwitchbackType(enum.Enum):
    """What happens after a failover once the preferred server is back."""

    INTELLIGENT = "intelligent"
    AUTOMATIC = "automatic"


class MirrorState(enum.Enum):
    """Sync state of one target of a DataKeeper mirror (DOMAIN.md, mirror state)."""

    TARGET = "Target"
    RESYNCING = "Resyncing"
    OUT_OF_SYNC = "Out of Sync"
    WAIT_FOR_PREVIOUS_SOURCE = "Out of Sync (Wait for Previous Source)"

    @property
    def label(self) -> str:
        return self.value

    @property
    def status(self) -> NodeStatus:
        return NodeStatus.NORMAL if self is MirrorState.TARGET else NodeStatus.WARNING


class Role(enum.IntEnum):
    """Session roles; a higher role may do everything a lower one may."""

    GUEST = 1
    OPERATOR = 2
    ADMINISTRATOR = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()


PRIORITY_MIN = 1
PRIORITY_MAX = 999
TAG_MAX_LENGTH = 256
DEFAULT_CHUNK_SIZE = 64 * 1024  # (ours) one bit of the bitmap covers this much
DEFAULT_SPEED_LIMIT_KBPS = 500_000  # LifeKeeper's LKDR_SPEED_LIMIT
LIFEKEEPER_DIR = "/opt/LifeKeeper"


def default_bitmap_file(dk_tag: str) -> str:
    """LifeKeeper's default bitmap location for a DataKeeper tag (a server path)."""
    return f"{LIFEKEEPER_DIR}/bitmap_{dk_tag}"


@dataclass(frozen=True)
class Server:
    name: str
    state: ServerState
    position: int = 0
    # Server Properties (core.rules.server_properties); the defaults are LifeKeeper's.
    shutdown_strategy: ShutdownStrategy = field(default_factory=lambda: ShutdownStrategy.SWITCHOVER)
    confirm_failover_from: tuple[str, ...] = ()  # peers whose failovers wait for a yes
    confirm_timeout: int = 600  # seconds (LifeKeeper's CONFIRMSOTO)
    confirm_default: ConfirmDefault = field(default_factory=lambda: ConfirmDefault.PROCEED)


@dataclass(frozen=True)
class Resource:
    """One resource instance: a logical resource of a hierarchy on one server."""

    resource_id: int
    hierarchy_id: int
    kind: ResourceKind
    server: str
    tag: str
    state: ResourceState
    mount_point: str | None = None  # filesystem: server path of the mount point
    fs_type: str | None = None  # filesystem: ext4, xfs, ...
    volume: str | None = None  # datakeeper: server path of the volume file
    bitmap_file: str | None = None  # datakeeper: server path, None = no intent log
    # The settings of the other kinds, as (name, value) pairs: ip "address" (CIDR) and
    # "interface"; app "start", "stop", "monitor" commands and "restart" mode.
    settings: tuple[tuple[str, str], ...] = ()
    reason: str = ""  # why it is in this state (a failed action's message), if known

    def setting(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.settings if k == name), default)


@dataclass(frozen=True)
class Dependency:
    parent_id: int
    child_id: int


@dataclass(frozen=True)
class Equivalency:
    """The hierarchy is defined on ``server`` with ``priority`` (1 = preferred)."""

    server: str
    priority: int

    def __post_init__(self) -> None:
        if not PRIORITY_MIN <= self.priority <= PRIORITY_MAX:
            raise ValueError(f"priority out of range: {self.priority}")


@dataclass(frozen=True)
class MirrorTarget:
    server: str
    state: MirrorState
    reason: str = ""
    bytes_done: int = 0
    bytes_total: int = 0
    rate: float = 0.0  # bytes per second
    eta: float | None = None  # seconds
    dirty_chunks: int = 0
    verify_percent: int | None = None  # while an online verify runs
    last_verified: float | None = None  # seconds since the epoch
    last_differences: int | None = None  # differing chunks the last verify found
    asynchronous: bool | None = None  # this target's replication mode; None: the mirror's

    @property
    def percent(self) -> int:
        if self.bytes_total <= 0:
            return 0
        return min(100, int(self.bytes_done * 100 / self.bytes_total))


@dataclass(frozen=True)
class Mirror:
    """The replication of one DataKeeper resource: a source and its targets."""

    resource_id: int
    source: str
    volume_size: int
    chunk_size: int
    speed_limit_kbps: int  # 0 = unlimited
    asynchronous: bool
    targets: tuple[MirrorTarget, ...] = ()

    def target(self, server: str) -> MirrorTarget | None:
        return next((t for t in self.targets if t.server == server), None)

    def is_asynchronous(self, server: str) -> bool:
        """Whether writes to the target ``server`` are asynchronous."""
        t = self.target(server)
        return self.asynchronous if t is None or t.asynchronous is None else t.asynchronous


@dataclass(frozen=True)
class Hierarchy:
    """A snapshot of one hierarchy on every server where it is defined."""

    id: int
    switchback: SwitchbackType
    version: int
    root_id: int
    resources: tuple[Resource, ...]
    dependencies: tuple[Dependency, ...]
    equivalencies: tuple[Equivalency, ...]
    mirrors: tuple[Mirror, ...] = ()
    kinds: dict[int, ResourceKind] = field(default_factory=dict, compare=False)

    # -- servers and priorities ------------------------------------------------------
    @property
    def servers(self) -> tuple[str, ...]:
        """Servers where the hierarchy is defined, best priority first."""
        return tuple(e.server for e in sorted(self.equivalencies, key=lambda e: e.priority))

    def priority_of(self, server: str) -> int | None:
        return next((e.priority for e in self.equivalencies if e.server == server), None)

    @property
    def in_service_server(self) -> str | None:
        """The server where the root is in service, if any."""
        for r in self.resources:
            if r.resource_id == self.root_id and r.state.in_service:
                return r.server
        return None

    @property
    def home_server(self) -> str:
        """Where the hierarchy is in service, else its best-priority server."""
        return self.in_service_server or self.servers[0]

    # -- resources --------------------------------------------------------------------
    def resource_ids(self) -> list[int]:
        """Logical resources, root first then depth first (the tree order)."""
        return [rid for rid, _depth in self.walk()]

    def walk(self, start: int | None = None) -> Iterator[tuple[int, int]]:
        """Yield ``(resource_id, depth)`` depth first from ``start`` (the root)."""
        stack = [(self.root_id if start is None else start, 0)]
        while stack:
            rid, depth = stack.pop()
            yield rid, depth
            for child in reversed(self.children(rid)):
                stack.append((child, depth + 1))

    def children(self, resource_id: int) -> list[int]:
        return sorted(d.child_id for d in self.dependencies if d.parent_id == resource_id)

    def parent(self, resource_id: int) -> int | None:
        return next((d.parent_id for d in self.dependencies if d.child_id == resource_id), None)

    def instance(self, resource_id: int, server: str) -> Resource | None:
        return next(
            (r for r in self.resources if r.resource_id == resource_id and r.server == server),
            None,
        )

    def instances_on(self, server: str) -> list[Resource]:
        order = {rid: i for i, rid in enumerate(self.resource_ids())}
        found = [r for r in self.resources if r.server == server]
        return sorted(found, key=lambda r: order.get(r.resource_id, 0))

    def kind_of(self, resource_id: int) -> ResourceKind:
        return next(r.kind for r in self.resources if r.resource_id == resource_id)

    def tag_of(self, resource_id: int) -> str:
        """The tag shown for a logical resource: its tag on the home server."""
        inst = self.instance(resource_id, self.home_server)
        if inst is None:
            inst = next(r for r in self.resources if r.resource_id == resource_id)
        return inst.tag

    @property
    def root_tag(self) -> str:
        return self.tag_of(self.root_id)

    def mirror(self, resource_id: int) -> Mirror | None:
        return next((m for m in self.mirrors if m.resource_id == resource_id), None)

    def depends_on_datakeeper(self) -> bool:
        return any(r.kind is ResourceKind.DATAKEEPER for r in self.resources)

    def status(self, resource_id: int) -> NodeStatus:
        """Worst state of a resource and everything below it, over all servers."""
        worst = NodeStatus.NORMAL
        for rid, _depth in self.walk(resource_id):
            for r in self.resources:
                if r.resource_id == rid:
                    worst = max(worst, r.state.status)
            m = self.mirror(rid)
            if m is not None:
                for t in m.targets:
                    worst = max(worst, t.state.status)
        return worst


class ShutdownStrategy(enum.Enum):
    """What a clean stop of a server does to the hierarchies in service on it."""

    SWITCHOVER = "switchover"  # they are switched over to the best standby server
    DO_NOT_SWITCHOVER = "do not switchover"  # they go out of service and stay down

    @property
    def option(self) -> str:
        """The word lkctl takes: ``switchover``, ``do-not-switchover``."""
        return self.value.replace(" ", "-")


class ConfirmDefault(enum.Enum):
    """What a failover waiting for confirmation does when nobody answers in time
    (LifeKeeper's CONFIRMSODEF: 0 proceeds, 1 blocks)."""

    PROCEED = "proceed"
    BLOCK = "block"


@dataclass(frozen=True)
class PendingFailover:
    """A failover of ``hierarchy_id`` from ``from_server`` to ``to_server`` that waits
    for the administrator's confirmation on ``to_server`` until ``deadline``."""

    hierarchy_id: int
    root_tag: str
    from_server: str
    to_server: str
    asked: float  # seconds since the epoch
    deadline: float
    default: ConfirmDefault
    reason: str  # why it fails over: "lab1 stopped", "every comm path to lab1 is down"


class CommPathState(enum.Enum):
    ALIVE = "ALIVE"
    DEAD = "DEAD"


@dataclass(frozen=True)
class CommPath:
    """A communication path between two servers (LifeKeeper's heartbeat link)."""

    server: str
    peer: str
    local_address: str
    peer_address: str
    state: CommPathState
    priority: int = 1
    path_id: int = 0  # the backend's number for the path (0: it has none)


@dataclass(frozen=True)
class Cluster:
    """Everything the status tree shows: servers and hierarchies (and comm paths)."""

    servers: tuple[Server, ...]
    hierarchies: tuple[Hierarchy, ...]
    comm_paths: tuple[CommPath, ...] = ()
    pending_failovers: tuple[PendingFailover, ...] = ()

    def paths_between(self, server: str, peer: str) -> tuple[CommPath, ...]:
        """The comm paths of ``server`` to ``peer``, as ``server`` sees them, by priority."""
        found = [p for p in self.comm_paths if p.server == server and p.peer == peer]
        return tuple(sorted(found, key=lambda p: (p.priority, p.path_id)))

    def server(self, name: str) -> Server | None:
        return next((s for s in self.servers if s.name == name), None)

    def hierarchy(self, hierarchy_id: int) -> Hierarchy | None:
        return next((h for h in self.hierarchies if h.id == hierarchy_id), None)

    def instances_on(self, server: str) -> list[Resource]:
        """Every resource on ``server``, hierarchy by hierarchy, in tree order."""
        found: list[Resource] = []
        for h in self.hierarchies:
            found.extend(h.instances_on(server))
        return found

    def find_tag(self, tag: str, server: str | None = None) -> Resource | None:
        for h in self.hierarchies:
            for r in h.resources:
                if r.tag == tag and (server is None or r.server == server):
                    return r
        return None


def share_unchanged(previous: Cluster | None, current: Cluster) -> Cluster:
    """``current``, reusing the hierarchy objects of ``previous`` that are equal (a
    console finds what changed by identity, in microseconds)."""
    if previous is None:
        return current
    old = {h.id: h for h in previous.hierarchies}
    hierarchies = tuple(
        old_h if (old_h := old.get(h.id)) is not None and old_h == h else h
        for h in current.hierarchies
    )
    servers = previous.servers if previous.servers == current.servers else current.servers
    paths = previous.comm_paths if previous.comm_paths == current.comm_paths else current.comm_paths
    return Cluster(servers, hierarchies, paths, current.pending_failovers)
