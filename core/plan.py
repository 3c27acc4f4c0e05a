"""Plans: what an operation will do, as typed step values a backend carries out.

A core operation turns a request into a :class:`Plan` of steps; ``backend.apply(plan)``
does them with the backend's own atomicity (the lab: one SQLite transaction plus an undo
journal; Pacemaker: one CIB change pushed once). A step is a frozen value that says
*what* happens, in LifeKeeper's words and with the server paths a user typed, never how
or where on this machine: its :attr:`Step.title` is the line the user sees in the wizard,
in the history and in ``--dry-run``.

Steps of a plan that creates a hierarchy refer to the resources it creates by ``key``
(the backend assigns the ids); every other step names existing ids.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from core.model import (
    ConfirmDefault,
    Resource,
    ResourceKind,
    ResourceState,
    ShutdownStrategy,
    SwitchbackType,
)
from core.permissions import Op
from core.status import format_size

NO_BITMAP = "None (every resync is a full resync)"


class Step(abc.ABC):
    """Base of every step; subclasses are frozen dataclasses."""

    @property
    @abc.abstractmethod
    def title(self) -> str:
        """The line the user sees for this step."""


# -- creating a hierarchy -----------------------------------------------------------------
@dataclass(frozen=True)
class CreateDisk(Step):
    server: str
    path: str  # server path of the new volume
    size: int

    @property
    def title(self) -> str:
        return f"Create disk {self.path} ({format_size(self.size)}) on {self.server}"


@dataclass(frozen=True)
class MakeFileSystem(Step):
    server: str
    path: str
    fs_type: str

    @property
    def title(self) -> str:
        return f"Make an {self.fs_type} file system on {self.path} (its current content is erased)"


@dataclass(frozen=True)
class CreateDataKeeper(Step):
    """A new hierarchy whose first resource is a DataKeeper resource (not in service)."""

    key: str
    server: str
    tag: str
    volume: str
    bitmap_file: str | None
    asynchronous: bool
    switchback: SwitchbackType
    chunk_size: int
    speed_limit_kbps: int

    @property
    def title(self) -> str:
        mode = "asynchronous" if self.asynchronous else "synchronous"
        return (
            f"Create DataKeeper resource {self.tag} on {self.server} (volume {self.volume}, "
            f"bitmap {self.bitmap_file or NO_BITMAP}, {mode} replication)"
        )


@dataclass(frozen=True)
class CreateFileSystemResource(Step):
    """A filesystem resource on top of the new DataKeeper resource ``on`` (the new root)."""

    key: str
    on: str  # the key of the DataKeeper resource it depends on
    server: str
    tag: str
    mount_point: str
    fs_type: str | None

    @property
    def title(self) -> str:
        return (
            f"Create filesystem resource {self.tag} on {self.server} "
            f"(mount point {self.mount_point}, {self.fs_type})"
        )


@dataclass(frozen=True)
class BringNewInService(Step):
    """The hierarchy this plan created comes in service on its server, priority 1."""

    server: str
    root_tag: str

    @property
    def title(self) -> str:
        return f"Bring {self.root_tag} in service on {self.server} (priority 1)"


@dataclass(frozen=True)
class CreateResource(Step):
    """A new hierarchy whose only resource is ``kind`` (an IP address, an application),
    in service on ``server`` with priority 1."""

    key: str
    server: str
    kind: ResourceKind
    tag: str
    settings: tuple[tuple[str, str], ...]
    switchback: SwitchbackType

    @property
    def title(self) -> str:
        shown = ", ".join(f"{k} {v}" for k, v in self.settings if v)
        return f"Create {self.kind.label} resource {self.tag} on {self.server} ({shown})"


# -- extending a hierarchy ------------------------------------------------------------------
@dataclass(frozen=True)
class CreateDataKeeperTarget(Step):
    """A DataKeeper resource defined on one more server (Standby), with its copy of the
    volume (made when missing, kept when it exists)."""

    resource: Resource  # the new instance on the target: tag, volume, bitmap file
    size: int

    @property
    def title(self) -> str:
        r = self.resource
        return (
            f"Create DataKeeper resource {r.tag} on {r.server} "
            f"(volume {r.volume}, {format_size(self.size)})"
        )


@dataclass(frozen=True)
class AddResource(Step):
    """Another resource of an existing hierarchy defined on one more server (Standby);
    for a filesystem its mount point is made there."""

    resource: Resource

    @property
    def title(self) -> str:
        r = self.resource
        if r.kind is ResourceKind.FILESYSTEM:
            return f"Create filesystem resource {r.tag} on {r.server} (mount point {r.mount_point})"
        return f"Create {r.kind.label} resource {r.tag} on {r.server}"


@dataclass(frozen=True)
class ConfigureMirror(Step):
    """The mirror of a DataKeeper resource gets one more target (resyncing from scratch)."""

    resource_id: int
    dk_tag: str
    source: str
    target: str
    target_bitmap: str | None  # the target's own intent log (used when it is the source)
    source_bitmap: str | None  # the source's intent log, which gets a section for it
    volume_size: int
    chunk_size: int
    asynchronous: bool = False  # this target's replication mode

    @property
    def title(self) -> str:
        mode = " (asynchronous replication)" if self.asynchronous else ""
        return (
            f"Configure mirror {self.dk_tag}: {self.source} → {self.target} with bitmap "
            f"{self.target_bitmap or NO_BITMAP}{mode}"
        )


@dataclass(frozen=True)
class SetPriorities(Step):
    hierarchy_id: int
    root_tag: str
    priorities: tuple[tuple[str, int], ...]  # (server, priority)
    switchback: SwitchbackType | None = None  # set it too, when given

    @property
    def title(self) -> str:
        shown = ", ".join(f"{s}={p}" for s, p in self.priorities)
        return f"Set priorities of {self.root_tag}: {shown}"


@dataclass(frozen=True)
class StartResync(Step):
    """Start the resync of one mirror target (after the rest is committed)."""

    resource_id: int
    dk_tag: str
    source: str
    target: str

    @property
    def title(self) -> str:
        return f"Start resync of {self.dk_tag} from {self.source} to {self.target}"


# -- unextend and delete -------------------------------------------------------------------
@dataclass(frozen=True)
class StopMirrors(Step):
    """Stop the resyncs of these mirror targets before anything else changes."""

    targets: tuple[tuple[int, str], ...]  # (resource_id, server)
    tags: tuple[str, ...]

    @property
    def title(self) -> str:
        return "Stop the mirrors of " + ", ".join(self.tags)


@dataclass(frozen=True)
class RemoveMirrorTarget(Step):
    resource_id: int
    dk_tag: str
    source: str
    target: str
    source_bitmap: str | None  # whose section for the target goes (after the commit)

    @property
    def title(self) -> str:
        return f"Remove mirror target {self.target} from {self.dk_tag}"


@dataclass(frozen=True)
class RemoveBitmapFile(Step):
    """Delete a bitmap file after the commit (best effort: an unused file is harmless)."""

    server: str
    path: str
    volume: str | None

    @property
    def title(self) -> str:
        kept = f" (the volume {self.volume} is kept)" if self.volume else ""
        return f"Remove bitmap file {self.path} on {self.server}{kept}"


@dataclass(frozen=True)
class RemoveResources(Step):
    hierarchy_id: int
    server: str
    tags: tuple[str, ...]

    @property
    def title(self) -> str:
        return f"Remove resources {', '.join(self.tags)} from {self.server}"


@dataclass(frozen=True)
class RemovePriority(Step):
    hierarchy_id: int
    root_tag: str
    server: str

    @property
    def title(self) -> str:
        return f"Remove {self.server} from the priorities of {self.root_tag}"


@dataclass(frozen=True)
class DeleteHierarchy(Step):
    hierarchy_id: int
    root_tag: str
    servers: tuple[str, ...]

    @property
    def title(self) -> str:
        return f"Remove {self.root_tag} and its resources from {', '.join(self.servers)}"


# -- in service, out of service, switchover ---------------------------------------------------
@dataclass(frozen=True)
class TakeOutOfService(Step):
    """Parents first: every resource of the hierarchy on ``server`` goes out of service."""

    hierarchy_id: int
    root_tag: str
    server: str
    order: tuple[str, ...]  # tags, parents first
    state: ResourceState = ResourceState.OSU

    @property
    def title(self) -> str:
        return (
            f"{self.root_tag} out of service on {self.server} (" + ", then ".join(self.order) + ")"
        )


@dataclass(frozen=True)
class MakeSource(Step):
    """Every mirror of the hierarchy: ``server`` becomes the source, the old one a target."""

    hierarchy_id: int
    server: str
    mirrors: tuple[tuple[str, str], ...]  # (dk tag, the old source)
    old_source_alive: bool = True
    full_resync: bool = False  # every other copy is resynced in full (Force Online)

    @property
    def title(self) -> str:
        return "; ".join(
            f"{tag}: {self.server} is the source now, {old} a target" for tag, old in self.mirrors
        )


@dataclass(frozen=True)
class BringInService(Step):
    """Children first: every resource of the hierarchy on ``server`` in service."""

    hierarchy_id: int
    root_tag: str
    server: str
    order: tuple[str, ...]  # tags, children first

    @property
    def title(self) -> str:
        return f"{self.root_tag} in service on {self.server} (" + ", then ".join(self.order) + ")"


# -- mirror actions --------------------------------------------------------------------------
@dataclass(frozen=True)
class PauseMirror(Step):
    resource_id: int
    dk_tag: str
    target: str

    @property
    def title(self) -> str:
        return (
            f"Paused the mirror of {self.dk_tag} to {self.target}: writes are only recorded "
            "in the bitmap until it is resumed."
        )


@dataclass(frozen=True)
class ResumeMirror(Step):
    resource_id: int
    dk_tag: str
    target: str

    @property
    def title(self) -> str:
        return f"Resumed the mirror of {self.dk_tag} to {self.target}: resyncing what it missed."


@dataclass(frozen=True)
class FullResync(Step):
    resource_id: int
    dk_tag: str
    target: str
    reason: str = "full resync requested"

    @property
    def title(self) -> str:
        return f"Full resync of {self.dk_tag} to {self.target} started: every chunk is copied."


@dataclass(frozen=True)
class SetSpeedLimit(Step):
    resource_id: int
    dk_tag: str
    kbps: int

    @property
    def title(self) -> str:
        shown = "unlimited" if self.kbps == 0 else f"{self.kbps} KB/s"
        return f"The resync speed limit of {self.dk_tag} is {shown}; it applies to every resync."


@dataclass(frozen=True)
class VerifyMirror(Step):
    """Online verify of one target; with ``repair`` what differs is resynced and read back."""

    resource_id: int
    dk_tag: str
    target: str
    repair: bool
    method: str = "blake2b"
    wait_repair: float = 600.0

    @property
    def title(self) -> str:
        also = ", and repair what differs" if self.repair else ""
        return f"Verify {self.dk_tag} on {self.target} against the source{also}"


# -- dependencies between resources (Create / Delete Dependency) -----------------------------
@dataclass(frozen=True)
class CreateDependency(Step):
    """``parent`` depends on ``child`` on every server where both are defined: the child's
    hierarchy (claimed at ``child_version``) joins the parent's."""

    parent_hierarchy_id: int
    parent_id: int
    parent_tag: str
    child_hierarchy_id: int
    child_version: int
    child_id: int
    child_tag: str
    servers: tuple[str, ...]

    @property
    def title(self) -> str:
        return (
            f"Create dependency {self.parent_tag} → {self.child_tag} on "
            f"{', '.join(self.servers)} ({self.child_tag} and what it depends on join the "
            f"hierarchy of {self.parent_tag})"
        )


@dataclass(frozen=True)
class DeleteDependency(Step):
    """``parent`` no longer depends on ``child``: the child and what it depends on are a
    hierarchy of their own, on the same servers with the same priorities."""

    hierarchy_id: int
    parent_id: int
    parent_tag: str
    child_id: int
    child_tag: str
    servers: tuple[str, ...]

    @property
    def title(self) -> str:
        return (
            f"Delete dependency {self.parent_tag} → {self.child_tag} on "
            f"{', '.join(self.servers)} ({self.child_tag} becomes the root of a hierarchy "
            "of its own)"
        )


# -- Server and Resource Properties, comm paths -------------------------------------------------
@dataclass(frozen=True)
class SetServerProperties(Step):
    """Server Properties: the Shutdown Strategy and the Failover Confirmation per peer."""

    server: str
    shutdown_strategy: ShutdownStrategy
    confirm_failover_from: tuple[str, ...]  # peers whose failovers to it wait for a yes
    confirm_timeout: int  # seconds
    confirm_default: ConfirmDefault  # what happens when nobody answers in time

    @property
    def title(self) -> str:
        confirm = (
            f"failovers from {', '.join(self.confirm_failover_from)} wait for confirmation "
            f"({self.confirm_timeout} s, then {self.confirm_default.value})"
            if self.confirm_failover_from
            else "failovers need no confirmation"
        )
        return f"Server {self.server}: Shutdown Strategy {self.shutdown_strategy.value}; {confirm}"


@dataclass(frozen=True)
class SetMirrorMode(Step):
    """One target of a mirror replicates synchronously or asynchronously."""

    resource_id: int
    dk_tag: str
    target: str
    asynchronous: bool

    @property
    def title(self) -> str:
        mode = "asynchronous" if self.asynchronous else "synchronous"
        return f"Mirror {self.dk_tag} to {self.target}: {mode} replication"


@dataclass(frozen=True)
class _CommPathStep(Step):
    server: str
    peer: str
    local_address: str
    remote_address: str
    priority: int

    @property
    def path(self) -> str:
        return (
            f"{self.server} {self.local_address} → {self.peer} {self.remote_address} "
            f"(priority {self.priority})"
        )


@dataclass(frozen=True)
class CreateCommPath(_CommPathStep):
    @property
    def title(self) -> str:
        return f"Create comm path {self.path}"


@dataclass(frozen=True)
class DeleteCommPath(_CommPathStep):
    path_id: int = 0  # the lab's id of the path

    @property
    def title(self) -> str:
        return f"Delete comm path {self.path}"


# -- server stop, mirror resize --------------------------------------------------------------
@dataclass(frozen=True)
class StopServer(Step):
    """A server fails (the lab's Stop Server): its in-service hierarchies fail over. A plan
    of this one step describes Stop Server for the what-if and ``--dry-run``; the
    backend's SERVER_POWER carries it out (``ServerPower.stop_server``)."""

    server: str

    @property
    def title(self) -> str:
        return f"Stop {self.server} as if it crashed (its in-service hierarchies fail over)"


@dataclass(frozen=True)
class GrowVolume(Step):
    """One server's copy of a mirror's volume grows (the new bytes read as zeros)."""

    resource_id: int
    dk_tag: str
    server: str
    path: str  # server path of the volume
    old_size: int
    new_size: int
    role: str  # "target" or "source" (targets grow first)

    @property
    def title(self) -> str:
        return (
            f"Grow the volume {self.path} of {self.dk_tag} on {self.server} ({self.role}): "
            f"{format_size(self.old_size)} → {format_size(self.new_size)}"
        )


@dataclass(frozen=True)
class GrowBitmap(Step):
    """A bitmap file of a mirror covers the grown volume: the chunks of the new space are
    dirty for every target it has a section for (resynced like any dirty region)."""

    resource_id: int
    server: str
    path: str  # server path of the bitmap file
    old_size: int
    new_size: int
    chunk_size: int

    @property
    def title(self) -> str:
        return (
            f"Grow the bitmap {self.path} on {self.server} to {format_size(self.new_size)} "
            "(the new chunks are dirty: resynced like any dirty region)"
        )


@dataclass(frozen=True)
class SetMirrorSize(Step):
    """The mirror's size is the new one; its targets resync the new chunks."""

    resource_id: int
    dk_tag: str
    old_size: int
    new_size: int
    targets: tuple[str, ...]  # the targets that resync the new space

    @property
    def title(self) -> str:
        verb = "resyncs" if len(self.targets) == 1 else "resync"
        resync = f"; {', '.join(self.targets)} {verb} the new space" if self.targets else ""
        return f"The mirror {self.dk_tag} is {format_size(self.new_size)} on every server{resync}"


# -- the plan ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """The steps of one operation, what it is called, and how it is checked."""

    op: Op  # the permission table's operation (the backend checks it again)
    name: str  # "extend /data to lab2": the history's and the output panel's name
    command: str  # the lkctl line that does the same
    steps: tuple[Step, ...]
    hierarchy_id: int | None = None  # the hierarchy claimed (optimistic version check)
    version: int | None = None
    done: str = ""  # what to say when every step is done
    extra: tuple[str, ...] = field(default=(), compare=False)  # warnings said at the end
    server: str = ""  # the server the operation is about (an extend's target...)
    intro: str = ""  # said before the first step ("{total}": the number of steps)
    committed: str = ""  # what is true once the changes are committed ("/data was extended")
    after_failure: str = ""  # what to do when a step after the commit fails

    @property
    def titles(self) -> list[str]:
        """The lines a user sees, one per step."""
        return [s.title for s in self.steps]


@dataclass(frozen=True)
class ApplyResult:
    """What ``backend.apply`` did."""

    message: str
    lines: tuple[str, ...]  # what happened, in order (the output panel's lines)
    hierarchy_id: int | None = None  # the hierarchy made or changed


__all__ = [
    "NO_BITMAP",
    "AddResource",
    "ApplyResult",
    "BringInService",
    "BringNewInService",
    "ConfigureMirror",
    "CreateCommPath",
    "CreateDataKeeper",
    "CreateDataKeeperTarget",
    "CreateDependency",
    "CreateDisk",
    "CreateFileSystemResource",
    "CreateResource",
    "DeleteCommPath",
    "DeleteDependency",
    "DeleteHierarchy",
    "FullResync",
    "GrowBitmap",
    "GrowVolume",
    "MakeFileSystem",
    "MakeSource",
    "PauseMirror",
    "Plan",
    "RemoveBitmapFile",
    "RemoveMirrorTarget",
    "RemovePriority",
    "RemoveResources",
    "ResumeMirror",
    "SetMirrorMode",
    "SetMirrorSize",
    "SetPriorities",
    "SetServerProperties",
    "SetSpeedLimit",
    "StartResync",
    "Step",
    "StopMirrors",
    "StopServer",
    "TakeOutOfService",
    "VerifyMirror",
]
