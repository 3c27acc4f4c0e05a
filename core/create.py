"""Create Resource Hierarchy (DataKeeper): request → defaults → checks → plan → execute.

DOMAIN.md, "Create Resource Hierarchy". The new hierarchy is in service on its server
with priority 1; the wizard then offers to extend it at once. In the lab a disk is a
file in the server's ``/disks``; "making a file system" writes the lab's file-system
label at the start of the volume (real bytes, replicated like any others), and
"Replicate Existing File System" needs a volume that has one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core import commands, fields
from core.backends.lab import mirrors
from core.backend import LabBackend
from core.checks import Problem, tag_problems
from core.errors import CheckFailed, LkError, OperationError
from core.events import EventHub
from core.extend import bitmap_problems, default_bitmap, h_all_instances
from core.files import private_dir
from core.backends.lab.journal import Journal, undo_action
from core.backends.lab.layout import DEFAULT_CHUNK_SIZE, DEFAULT_SPEED_LIMIT_KBPS, LabLayout
from core.model import (
    Cluster,
    Mirror,
    Resource,
    ResourceKind,
    ResourceState,
    SwitchbackType,
)
from core.backends.lab.oplog import OperationLog, authorize
from core.permissions import Op
from core.session import Session
from core.status import format_size
from core.backends.lab.store import Txn

log = logging.getLogger(__name__)

NEW_FS = "new_fs"
EXISTING_FS = "existing_fs"
DK_ONLY = "dk_only"
HIERARCHY_TYPES = {
    NEW_FS: "Replicate New File System",
    EXISTING_FS: "Replicate Existing File System",
    DK_ONLY: "DataKeeper Resource only",
}
FS_TYPES = ("ext4", "xfs", "ext3")
FS_LABEL = b"LKLABFS1"  # the lab's file-system label, at offset 0 of a volume
DEFAULT_DISK_MIB = 64
MAX_DISK_MIB = 64 * 1024

LABELS = {
    "switchback_type": "Switchback Type",
    "server": "Server",
    "hierarchy_type": "Hierarchy Type",
    "source_disk": "Source Disk",
    "disk_size_mib": "New Disk Size (MiB)",
    "mount_point": "Mount Point",
    "root_tag": "Root Tag",
    "fs_type": "File System Type",
    "dk_tag": "Data Replication Resource Tag",
    "bitmap_file": "Bitmap File",
    "asynchronous": "Enable Asynchronous Replication",
}


@dataclass(frozen=True)
class CreateRequest:
    server: str
    hierarchy_type: str = NEW_FS
    source_disk: str = ""
    disk_size_mib: int | str | None = None  # only for a disk that does not exist yet
    mount_point: str | None = None
    root_tag: str | None = None
    fs_type: str | None = "ext4"
    dk_tag: str = ""
    bitmap_file: str | None = None
    asynchronous: bool = False
    switchback_type: str = SwitchbackType.INTELLIGENT.value

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CreateDefaults:
    request: CreateRequest
    choices: dict[str, tuple[str, ...]]
    shown: tuple[str, ...]
    bitmap_note: str = ""


@dataclass(frozen=True)
class CreateResult:
    hierarchy_id: int
    root_tag: str
    server: str
    message: str


def disks_of(layout: LabLayout, server: str) -> list[str]:
    """The volume files in a server's /disks (server paths)."""
    folder = layout.server_path(server, "/disks")
    if not folder.is_dir():
        return []
    return sorted(
        f"/disks/{p.name}" for p in folder.iterdir() if p.is_file() and p.suffix == ".img"
    )


def fs_label(path: Path) -> str | None:
    """The lab file system on a volume ("ext4"...), or None when it has none."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError:
        return None
    if not head.startswith(FS_LABEL):
        return None
    return head[len(FS_LABEL) :].split(b"\0", 1)[0].decode("ascii", "replace") or None


def _used_disks(cluster: Cluster, server: str) -> set[str]:
    return {r.volume for r in h_all_instances(cluster, server) if r.volume}


def shown_fields(hierarchy_type: str) -> tuple[str, ...]:
    shown = ["switchback_type", "server", "hierarchy_type", "source_disk", "disk_size_mib"]
    if hierarchy_type != DK_ONLY:
        shown += ["mount_point", "root_tag", "fs_type"]
    shown += ["dk_tag", "bitmap_file", "asynchronous"]
    return tuple(shown)


def defaults(
    cluster: Cluster, layout: LabLayout, *, server: str | None = None, hierarchy_type: str = NEW_FS
) -> CreateDefaults:
    alive = [s.name for s in cluster.servers if s.state.is_alive]
    if server is None or server not in [s.name for s in cluster.servers]:
        server = alive[0] if alive else (cluster.servers[0].name if cluster.servers else "")
    used = _used_disks(cluster, server)
    free_disks = [d for d in disks_of(layout, server) if d not in used]
    protected = {r.mount_point for r in h_all_instances(cluster, server) if r.mount_point}
    tags = {r.tag for h in cluster.hierarchies for r in h.resources}
    n = 2
    while f"/data{n}" in protected or f"/data{n}" in tags or f"datarep-data{n}" in tags:
        n += 1
    mount = f"/data{n}"
    dk_tag = f"datarep-data{n}"
    if hierarchy_type == EXISTING_FS and free_disks:
        labelled = [d for d in free_disks if fs_label(layout.server_path(server, d))]
        disk = (labelled or free_disks)[0]
    elif free_disks and hierarchy_type != NEW_FS:
        disk = free_disks[0]
    else:
        disk = f"/disks/{dk_tag}.img"
    exists = layout.server_path(server, disk).exists() if server else False
    bitmap, note = default_bitmap(layout, server, dk_tag) if server else ("", "")
    request = CreateRequest(
        server=server,
        hierarchy_type=hierarchy_type,
        source_disk=disk,
        disk_size_mib=None if exists else DEFAULT_DISK_MIB,
        mount_point=None if hierarchy_type == DK_ONLY else mount,
        root_tag=None if hierarchy_type == DK_ONLY else mount,
        fs_type=None if hierarchy_type == DK_ONLY else "ext4",
        dk_tag=dk_tag,
        bitmap_file=bitmap,
    )
    return CreateDefaults(
        request=request,
        choices={
            "server": tuple(s.name for s in cluster.servers),
            "hierarchy_type": tuple(HIERARCHY_TYPES),
            "source_disk": tuple(free_disks),
            "fs_type": FS_TYPES,
            "switchback_type": tuple(t.value for t in SwitchbackType),
        },
        shown=shown_fields(hierarchy_type),
        bitmap_note=note,
    )


# -- checks -------------------------------------------------------------------------------
def check_request(cluster: Cluster, layout: LabLayout, request: CreateRequest) -> list[Problem]:
    problems: list[Problem] = []

    def p(field: str, code: str, message: str) -> None:
        problems.append(Problem(field, code, message))

    names = [s.name for s in cluster.servers]
    server = fields.text(request.server)
    if server not in names:
        p(
            "server",
            "unknown_server",
            f"Server {server!r} is not a server of this cluster ({', '.join(names)}).",
        )
        return problems
    s = cluster.server(server)
    if s is not None and not s.state.is_alive:
        p("server", "server_down", f"Server {server} is {s.state.value}; start it first.")
    switchback = fields.text(request.switchback_type).lower()
    if switchback == SwitchbackType.AUTOMATIC.value:
        p(
            "switchback_type",
            "automatic_with_datakeeper",
            "Switchback Type automatic is not supported: DataKeeper supports only intelligent "
            "switchback. Choose intelligent.",
        )
    elif switchback != SwitchbackType.INTELLIGENT.value:
        p(
            "switchback_type",
            "unknown_switchback",
            f"Switchback Type {request.switchback_type!r} is not one of intelligent, automatic.",
        )
    kind = request.hierarchy_type
    if kind not in HIERARCHY_TYPES:
        p(
            "hierarchy_type",
            "unknown_type",
            f"Hierarchy Type {kind!r} is not one of: {', '.join(HIERARCHY_TYPES.values())}.",
        )
        return problems
    used = _used_disks(cluster, server)
    taken_tags = {r.tag for r in h_all_instances(cluster, server)}
    disk = fields.text(request.source_disk)
    local: Path | None = None
    why = fields.path_problem(disk) if disk else "is required."
    if why:
        p(
            "source_disk",
            "bad_path",
            f"Source Disk {disk!r} {why}"
            if disk
            else "Source Disk is required: choose a volume of the server, or name a new one.",
        )
    elif PurePosixPath(disk).parent != PurePosixPath("/disks"):
        p(
            "source_disk",
            "not_a_disk",
            f"Source Disk {disk} must be a volume in /disks of {server} (a lab disk).",
        )
    else:
        local = layout.server_path(server, disk)
        if disk in used:
            p(
                "source_disk",
                "disk_in_use",
                f"Source Disk {disk} is already replicated by another DataKeeper resource on "
                f"{server}; choose another disk.",
            )
        elif local.is_dir():
            p("source_disk", "bad_path", f"Source Disk {disk} is a folder, not a volume.")
        elif not local.exists():
            if kind == EXISTING_FS:
                p(
                    "source_disk",
                    "no_such_disk",
                    f"Source Disk {disk} does not exist on {server}: Replicate Existing File "
                    "System needs a volume that has a file system.",
                )
            else:
                size = _disk_size(request.disk_size_mib, problems)
                if size is not None:
                    free = fields.free_bytes(local.parent)
                    if free is not None and free < size:
                        p(
                            "disk_size_mib",
                            "no_disk_space",
                            f"{server} has {format_size(free)} free in /disks; a "
                            f"{format_size(size)} disk does not fit.",
                        )
        elif kind == EXISTING_FS and fs_label(local) is None:
            p(
                "source_disk",
                "no_file_system",
                f"Source Disk {disk} has no file system: choose Replicate New File System "
                "(which makes one), or DataKeeper Resource only.",
            )
    new_tags: list[str] = []
    if kind != DK_ONLY:
        mount = fields.text(request.mount_point)
        why = fields.path_problem(mount) if mount else "is required (an absolute path)."
        protected = {r.mount_point for r in h_all_instances(cluster, server) if r.mount_point}
        if why:
            p(
                "mount_point",
                "bad_path",
                f"Mount Point {mount!r} {why}"
                if mount
                else "Mount Point is required (an absolute path).",
            )
        elif mount == "/":
            p(
                "mount_point",
                "root_mount_point",
                "Mount Point / is the root filesystem and cannot be protected; choose a folder "
                "such as /data2.",
            )
        elif fields.norm(mount) in {fields.norm(m) for m in protected}:
            p(
                "mount_point",
                "mount_point_protected",
                f"Mount Point {mount} is already protected on {server}.",
            )
        root_tag = request.root_tag or ""
        found = tag_problems("root_tag", "Root Tag", root_tag)
        problems += found
        if not found and root_tag in taken_tags:
            p("root_tag", "tag_in_use", f"Root Tag {root_tag!r} is already used on {server}.")
        new_tags.append(root_tag)
        if kind == NEW_FS and request.fs_type not in FS_TYPES:
            p(
                "fs_type",
                "unknown_fs_type",
                f"File System Type {request.fs_type!r} is not one of {', '.join(FS_TYPES)}.",
            )
    found = tag_problems("dk_tag", "Data Replication Resource Tag", request.dk_tag)
    problems += found
    if not found:
        if request.dk_tag in taken_tags:
            p(
                "dk_tag",
                "tag_in_use",
                f"Data Replication Resource Tag {request.dk_tag!r} is already used on {server}.",
            )
        elif request.dk_tag in new_tags:
            p("dk_tag", "tag_repeated", "Data Replication Resource Tag and Root Tag must differ.")
    if request.bitmap_file is not None:
        for code, message in bitmap_problems(layout, server, request.bitmap_file):
            p("bitmap_file", code, message)
    if not isinstance(request.asynchronous, bool):
        p("asynchronous", "not_yes_no", "Enable Asynchronous Replication is yes or no.")
    return problems


def _disk_size(value: int | str | None, problems: list[Problem]) -> int | None:
    text = fields.text(value)
    try:
        mib = int(text)
    except ValueError:
        problems.append(
            Problem(
                "disk_size_mib",
                "not_integer",
                f"New Disk Size {text!r} must be a whole number of MiB.",
            )
        )
        return None
    if not 1 <= mib <= MAX_DISK_MIB:
        problems.append(
            Problem(
                "disk_size_mib",
                "out_of_range",
                f"New Disk Size {mib} MiB is out of range: 1 to {MAX_DISK_MIB} MiB.",
            )
        )
        return None
    return mib * 1024 * 1024


# -- plan and execute ------------------------------------------------------------------
@dataclass(frozen=True)
class CreateStep:
    title: str
    run: Callable[[_Ctx], None] = dataclasses.field(repr=False, compare=False)


@dataclass
class _Ctx:
    backend: LabBackend
    request: CreateRequest
    journal: Journal
    txn: Txn | None = None
    undo: list[dict[str, object]] = dataclasses.field(default_factory=list)
    hierarchy_id: int = 0
    dk_id: int = 0
    fs_id: int = 0
    volume_size: int = 0

    def record(self, action: dict[str, object]) -> None:
        self.journal.record(action)
        self.undo.append(action)

    @property
    def rows(self) -> Txn:
        assert self.txn is not None
        return self.txn


@dataclass(frozen=True)
class CreatePlan:
    request: CreateRequest
    steps: tuple[CreateStep, ...]

    @property
    def titles(self) -> list[str]:
        return [s.title for s in self.steps]


def plan(cluster: Cluster, layout: LabLayout, request: CreateRequest) -> CreatePlan:
    problems = check_request(cluster, layout, request)
    if problems:
        raise CheckFailed(problems)
    r = request
    local = layout.server_path(r.server, r.source_disk)
    steps: list[CreateStep] = []
    if not local.exists():
        size = int(fields.text(r.disk_size_mib)) * 1024 * 1024
        steps.append(
            CreateStep(
                f"Create disk {r.source_disk} ({format_size(size)}) on {r.server}",
                _make_disk(local, size),
            )
        )
    if r.hierarchy_type == NEW_FS:
        steps.append(
            CreateStep(
                f"Make an {r.fs_type} file system on {r.source_disk} (its "
                "current content is erased)",
                _make_fs(local, r.fs_type or ""),
            )
        )
    bitmap = r.bitmap_file or "None (every resync is a full resync)"
    mode = "asynchronous" if r.asynchronous else "synchronous"
    steps.append(
        CreateStep(
            f"Create DataKeeper resource {r.dk_tag} on {r.server} (volume "
            f"{r.source_disk}, bitmap {bitmap}, {mode} replication)",
            _make_dk(local),
        )
    )
    if r.hierarchy_type != DK_ONLY:
        fs = fs_label(local) if r.hierarchy_type == EXISTING_FS else r.fs_type
        steps.append(
            CreateStep(
                f"Create filesystem resource {r.root_tag} on {r.server} "
                f"(mount point {r.mount_point}, {fs})",
                _make_fs_resource(fs),
            )
        )
    root = r.root_tag if r.hierarchy_type != DK_ONLY else r.dk_tag
    steps.append(CreateStep(f"Bring {root} in service on {r.server} (priority 1)", _in_service))
    return CreatePlan(request, tuple(steps))


def execute(
    backend: LabBackend,
    create_plan: CreatePlan,
    session: Session,
    *,
    hub: EventHub | None = None,
    on_step: Callable[[int, int, str, str], None] | None = None,
) -> CreateResult:
    r = create_plan.request
    root = r.root_tag if r.hierarchy_type != DK_ONLY else r.dk_tag
    store = backend.store
    name = f"create {root} on {r.server}"
    authorize(store, session, Op.CREATE_HIERARCHY, name, commands.create(r))
    out = OperationLog(name, hub, session, commands.create(r))
    steps = create_plan.steps
    total = len(steps)
    out.say("INFO", f"Creating {root} on {r.server} ({total} steps)")
    current = -1
    with Journal(store, out.operation) as jour:
        ctx = _Ctx(backend, r, jour)
        try:
            with store.transaction() as txn:
                ctx.txn = txn
                for current, step in enumerate(steps):
                    if on_step:
                        on_step(current, total, step.title, "running")
                    backend.run_step(r.server, _runner(step, ctx))
                    out.say("INFO", f"[{current + 1}/{total}] {step.title}: done")
                    if on_step:
                        on_step(current, total, step.title, "done")
                jour.mark_committed(txn)
                out.flush(txn)
        except BaseException as exc:
            title = steps[current].title if current >= 0 else "before the first step"
            for action in reversed(ctx.undo):
                try:
                    undo_action(action)
                except OSError:
                    jour.keep_for_recovery()
                    break
            if on_step and current >= 0:
                on_step(current, total, title, "failed")
            reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
            out.say("ERROR", f"Step failed: {title}: {reason}")
            out.say("INFO", "Rolled back: nothing was created.")
            out.finish(store, ok=False, message=reason)
            if isinstance(exc, LkError) and not isinstance(exc, OperationError):
                raise
            if not isinstance(exc, Exception):
                raise
            raise OperationError(reason, step=title) from exc
    message = (
        f"{root} was created and is in service on {r.server} (priority 1). Extend it "
        "to another server to protect it."
    )
    out.say("INFO", message)
    out.finish(store, ok=True, message=message)
    return CreateResult(ctx.hierarchy_id, root or "", r.server, message)


def create(
    backend: LabBackend, request: CreateRequest, session: Session, *, hub: EventHub | None = None
) -> CreateResult:
    return execute(backend, plan(backend.cluster(), backend.layout, request), session, hub=hub)


def _runner(step: CreateStep, ctx: _Ctx) -> Callable[[Path], None]:
    return lambda _root: step.run(ctx)


def _make_disk(local: Path, size: int) -> Callable[[_Ctx], None]:
    def run(ctx: _Ctx) -> None:
        ctx.record({"delete_file": str(local)})
        mirrors.prepare_target_volume(local, size)

    return run


def _make_fs(local: Path, fs_type: str) -> Callable[[_Ctx], None]:
    def run(ctx: _Ctx) -> None:
        label = FS_LABEL + fs_type.encode("ascii")
        with open(local, "r+b") as f:
            f.write(label.ljust(4096, b"\0"))
            f.flush()

    return run


def _make_dk(local: Path) -> Callable[[_Ctx], None]:
    def run(ctx: _Ctx) -> None:
        r = ctx.request
        ctx.volume_size = local.stat().st_size
        if r.bitmap_file is not None:
            bitmap = ctx.backend.layout.server_path(r.server, r.bitmap_file)
            if not bitmap.exists():
                ctx.record({"delete_file": str(bitmap)})
            mirrors.create_bitmap(bitmap, ctx.volume_size, DEFAULT_CHUNK_SIZE)
        txn = ctx.rows
        ctx.hierarchy_id = txn.add_hierarchy(SwitchbackType(r.switchback_type.lower()))
        ctx.dk_id = txn.add_resource(ctx.hierarchy_id, ResourceKind.DATAKEEPER)
        txn.add_instance(
            Resource(
                ctx.dk_id,
                ctx.hierarchy_id,
                ResourceKind.DATAKEEPER,
                r.server,
                r.dk_tag,
                ResourceState.OSU,
                volume=r.source_disk,
                bitmap_file=r.bitmap_file,
            )
        )
        txn.set_root(ctx.hierarchy_id, ctx.dk_id)
        txn.add_mirror(
            Mirror(
                ctx.dk_id,
                r.server,
                ctx.volume_size,
                DEFAULT_CHUNK_SIZE,
                DEFAULT_SPEED_LIMIT_KBPS,
                r.asynchronous,
            )
        )

    return run


def _make_fs_resource(fs_type: str | None) -> Callable[[_Ctx], None]:
    def run(ctx: _Ctx) -> None:
        r = ctx.request
        assert r.mount_point is not None and r.root_tag is not None
        folder = ctx.backend.layout.server_path(r.server, r.mount_point)
        if not folder.exists():
            ctx.record({"rmdir": str(folder)})
            private_dir(folder)
        txn = ctx.rows
        ctx.fs_id = txn.add_resource(ctx.hierarchy_id, ResourceKind.FILESYSTEM)
        txn.add_instance(
            Resource(
                ctx.fs_id,
                ctx.hierarchy_id,
                ResourceKind.FILESYSTEM,
                r.server,
                r.root_tag,
                ResourceState.OSU,
                mount_point=r.mount_point,
                fs_type=fs_type,
            )
        )
        txn.add_dependency(ctx.fs_id, ctx.dk_id)
        txn.set_root(ctx.hierarchy_id, ctx.fs_id)

    return run


def _in_service(ctx: _Ctx) -> None:
    r = ctx.request
    txn = ctx.rows
    txn.set_instance_state(ctx.dk_id, r.server, ResourceState.ISP)
    if ctx.fs_id:
        txn.set_instance_state(ctx.fs_id, r.server, ResourceState.ISP)
    txn.set_priority(ctx.hierarchy_id, r.server, 1)
