"""Create Resource Hierarchy (DataKeeper): defaults and checks (pure), and the steps.

DOMAIN.md, "Create Resource Hierarchy". The new hierarchy is in service on its server
with priority 1; the wizard then offers to extend it at once. What the rules must know
about the server's disks (its volumes, their file systems, free space, the bitmap
location) comes in :class:`~core.facts.Facts` (see :func:`needs`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import PurePosixPath

from core.checks import Problem, tag_problems
from core.errors import CheckFailed
from core.facts import Facts, Needs, VolumeInfo
from core.model import DEFAULT_CHUNK_SIZE, DEFAULT_SPEED_LIMIT_KBPS, Cluster, SwitchbackType
from core.plan import (
    BringNewInService,
    CreateDataKeeper,
    CreateDisk,
    CreateFileSystemResource,
    MakeFileSystem,
    Step,
)
from core.rules import bitmaps
from core.rules.paths import norm, path_problem, text
from core.status import format_size

DISKS = "/disks"

NEW_FS = "new_fs"
EXISTING_FS = "existing_fs"
DK_ONLY = "dk_only"
HIERARCHY_TYPES = {
    NEW_FS: "Replicate New File System",
    EXISTING_FS: "Replicate Existing File System",
    DK_ONLY: "DataKeeper Resource only",
}
FS_TYPES = ("ext4", "xfs", "ext3")
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


def volume_of(facts: Facts, server: str, disk: str) -> VolumeInfo | None:
    return next((v for v in facts.volumes_of(server) if v.path == disk), None)


def _used_disks(cluster: Cluster, server: str) -> set[str]:
    return {r.volume for r in cluster.instances_on(server) if r.volume}


def shown_fields(hierarchy_type: str) -> tuple[str, ...]:
    shown = ["switchback_type", "server", "hierarchy_type", "source_disk", "disk_size_mib"]
    if hierarchy_type != DK_ONLY:
        shown += ["mount_point", "root_tag", "fs_type"]
    shown += ["dk_tag", "bitmap_file", "asynchronous"]
    return tuple(shown)


def default_server(cluster: Cluster, server: str | None) -> str:
    if server is not None and server in [s.name for s in cluster.servers]:
        return server
    alive = [s.name for s in cluster.servers if s.state.is_alive]
    return alive[0] if alive else (cluster.servers[0].name if cluster.servers else "")


def _new_names(cluster: Cluster, server: str) -> tuple[str, str]:
    """The first /dataN mount point and datarep-dataN tag that are free."""
    protected = {r.mount_point for r in cluster.instances_on(server) if r.mount_point}
    tags = {r.tag for h in cluster.hierarchies for r in h.resources}
    n = 2
    while f"/data{n}" in protected or f"/data{n}" in tags or f"datarep-data{n}" in tags:
        n += 1
    return f"/data{n}", f"datarep-data{n}"


def defaults_needs(cluster: Cluster, server: str | None = None) -> Needs:
    """What :func:`defaults` asks for."""
    server = default_server(cluster, server)
    if not server:
        return Needs()
    _mount, dk_tag = _new_names(cluster, server)
    return Needs(volumes=frozenset([server])) | bitmaps.default_needs(server, dk_tag)


def defaults(
    cluster: Cluster, facts: Facts, *, server: str | None = None, hierarchy_type: str = NEW_FS
) -> CreateDefaults:
    server = default_server(cluster, server)
    used = _used_disks(cluster, server)
    volumes = facts.volumes_of(server) if server else ()
    free_disks = [v.path for v in volumes if v.path not in used]
    mount, dk_tag = _new_names(cluster, server)
    if hierarchy_type == EXISTING_FS and free_disks:
        labelled = [v.path for v in volumes if v.path in free_disks and v.fs_label]
        disk = (labelled or free_disks)[0]
    elif free_disks and hierarchy_type != NEW_FS:
        disk = free_disks[0]
    else:
        disk = f"{DISKS}/{dk_tag}.img"
    exists = any(v.path == disk for v in volumes)
    bitmap, note = bitmaps.default_bitmap(facts, server, dk_tag) if server else ("", "")
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
def needs(cluster: Cluster, request: CreateRequest) -> Needs:
    """What :func:`check_request` asks for: the server's volumes, its /disks folder (room
    for a new disk) and the bitmap location."""
    server = text(request.server)
    if server not in [s.name for s in cluster.servers]:
        return Needs()
    disk = text(request.source_disk)
    disk_needs = Needs.of_paths([(server, disk)]) if disk and not path_problem(disk) else Needs()
    return (
        Needs(volumes=frozenset([server]))
        | Needs.of_paths([(server, DISKS)])
        | disk_needs
        | bitmaps.needs(server, request.bitmap_file)
    )


def check_request(cluster: Cluster, facts: Facts, request: CreateRequest) -> list[Problem]:
    names = [s.name for s in cluster.servers]
    server = text(request.server)
    if server not in names:
        return [
            Problem(
                "server",
                "unknown_server",
                f"Server {server!r} is not a server of this cluster ({', '.join(names)}).",
            )
        ]
    problems = _server_and_switchback_problems(cluster, request, server)
    kind = request.hierarchy_type
    if kind not in HIERARCHY_TYPES:
        problems.append(
            Problem(
                "hierarchy_type",
                "unknown_type",
                f"Hierarchy Type {kind!r} is not one of: {', '.join(HIERARCHY_TYPES.values())}.",
            )
        )
        return problems
    taken_tags = {r.tag for r in cluster.instances_on(server)}
    problems += _source_disk_problems(cluster, facts, request, server)
    new_tags: list[str] = []
    if kind != DK_ONLY:
        problems += _filesystem_problems(cluster, request, server, taken_tags)
        new_tags.append(request.root_tag or "")
    problems += _dk_tag_problems(request, server, taken_tags, new_tags)
    if request.bitmap_file is not None:
        for code, message in bitmaps.problems(facts, server, request.bitmap_file):
            problems.append(Problem("bitmap_file", code, message))
    if not isinstance(request.asynchronous, bool):
        problems.append(
            Problem("asynchronous", "not_yes_no", "Enable Asynchronous Replication is yes or no.")
        )
    return problems


def _server_and_switchback_problems(
    cluster: Cluster, request: CreateRequest, server: str
) -> list[Problem]:
    """The (known) server must be alive; the switchback type intelligent."""
    problems: list[Problem] = []
    s = cluster.server(server)
    if s is not None and not s.state.is_alive:
        problems.append(
            Problem("server", "server_down", f"Server {server} is {s.state.value}; start it first.")
        )
    switchback = text(request.switchback_type).lower()
    if switchback == SwitchbackType.AUTOMATIC.value:
        problems.append(
            Problem(
                "switchback_type",
                "automatic_with_datakeeper",
                "Switchback Type automatic is not supported: DataKeeper supports only "
                "intelligent switchback. Choose intelligent.",
            )
        )
    elif switchback != SwitchbackType.INTELLIGENT.value:
        problems.append(
            Problem(
                "switchback_type",
                "unknown_switchback",
                f"Switchback Type {request.switchback_type!r} is not one of intelligent, "
                "automatic.",
            )
        )
    return problems


def _source_disk_problems(
    cluster: Cluster, facts: Facts, request: CreateRequest, server: str
) -> list[Problem]:
    """The Source Disk: a volume in /disks of the server that no mirror uses yet, with a
    file system when the type says so (a new one: see :func:`_new_disk_problems`)."""
    disk = text(request.source_disk)
    why = path_problem(disk) if disk else "is required."
    if why:
        return [
            Problem(
                "source_disk",
                "bad_path",
                f"Source Disk {disk!r} {why}"
                if disk
                else "Source Disk is required: choose a volume of the server, or name a new one.",
            )
        ]
    if PurePosixPath(disk).parent != PurePosixPath(DISKS):
        return [
            Problem(
                "source_disk",
                "not_a_disk",
                f"Source Disk {disk} must be a volume in /disks of {server} (a lab disk).",
            )
        ]
    return _volume_problems(cluster, facts, request, server, disk)


def _volume_problems(
    cluster: Cluster, facts: Facts, request: CreateRequest, server: str, disk: str
) -> list[Problem]:
    """A Source Disk in /disks: free for a new mirror, and a volume (or a new one)."""
    kind = request.hierarchy_type
    volume = volume_of(facts, server, disk)
    if disk in _used_disks(cluster, server):
        return [
            Problem(
                "source_disk",
                "disk_in_use",
                f"Source Disk {disk} is already replicated by another DataKeeper resource on "
                f"{server}; choose another disk.",
            )
        ]
    if volume is None and facts.path(server, disk).is_dir:
        return [
            Problem("source_disk", "bad_path", f"Source Disk {disk} is a folder, not a volume.")
        ]
    if volume is None:
        if kind == EXISTING_FS:
            return [
                Problem(
                    "source_disk",
                    "no_such_disk",
                    f"Source Disk {disk} does not exist on {server}: Replicate Existing File "
                    "System needs a volume that has a file system.",
                )
            ]
        return _new_disk_problems(facts, request, server)
    if kind == EXISTING_FS and volume.fs_label is None:
        return [
            Problem(
                "source_disk",
                "no_file_system",
                f"Source Disk {disk} has no file system: choose Replicate New File System "
                "(which makes one), or DataKeeper Resource only.",
            )
        ]
    return []


def _new_disk_problems(facts: Facts, request: CreateRequest, server: str) -> list[Problem]:
    """A disk to create: its size, and room for it in /disks of the server."""
    problems: list[Problem] = []
    size = _disk_size(request.disk_size_mib, problems)
    if size is not None:
        folder = facts.path(server, DISKS)
        free = folder.free_bytes
        if folder.exists and not folder.is_dir:
            problems.append(
                Problem("source_disk", "bad_path", f"{DISKS} on {server} is not a folder.")
            )
        elif free is not None and free < size:
            problems.append(
                Problem(
                    "disk_size_mib",
                    "no_disk_space",
                    f"{server} has {format_size(free)} free in /disks; a "
                    f"{format_size(size)} disk does not fit.",
                )
            )
    return problems


def _filesystem_problems(
    cluster: Cluster, request: CreateRequest, server: str, taken_tags: set[str]
) -> list[Problem]:
    """The fields of the protected filesystem: Mount Point, Root Tag, File System Type."""
    problems = _mount_point_problems(cluster, request, server)
    root_tag = request.root_tag or ""
    found = tag_problems("root_tag", "Root Tag", root_tag)
    problems += found
    if not found and root_tag in taken_tags:
        problems.append(
            Problem("root_tag", "tag_in_use", f"Root Tag {root_tag!r} is already used on {server}.")
        )
    if request.hierarchy_type == NEW_FS and request.fs_type not in FS_TYPES:
        problems.append(
            Problem(
                "fs_type",
                "unknown_fs_type",
                f"File System Type {request.fs_type!r} is not one of {', '.join(FS_TYPES)}.",
            )
        )
    return problems


def _mount_point_problems(cluster: Cluster, request: CreateRequest, server: str) -> list[Problem]:
    mount = text(request.mount_point)
    why = path_problem(mount) if mount else "is required (an absolute path)."
    protected = {r.mount_point for r in cluster.instances_on(server) if r.mount_point}
    if why:
        return [
            Problem(
                "mount_point",
                "bad_path",
                f"Mount Point {mount!r} {why}"
                if mount
                else "Mount Point is required (an absolute path).",
            )
        ]
    if mount == "/":
        return [
            Problem(
                "mount_point",
                "root_mount_point",
                "Mount Point / is the root filesystem and cannot be protected; choose a folder "
                "such as /data2.",
            )
        ]
    if norm(mount) in {norm(m) for m in protected}:
        return [
            Problem(
                "mount_point",
                "mount_point_protected",
                f"Mount Point {mount} is already protected on {server}.",
            )
        ]
    return []


def _dk_tag_problems(
    request: CreateRequest, server: str, taken_tags: set[str], new_tags: list[str]
) -> list[Problem]:
    found = tag_problems("dk_tag", "Data Replication Resource Tag", request.dk_tag)
    problems = list(found)
    if not found:
        if request.dk_tag in taken_tags:
            problems.append(
                Problem(
                    "dk_tag",
                    "tag_in_use",
                    f"Data Replication Resource Tag {request.dk_tag!r} is already used on "
                    f"{server}.",
                )
            )
        elif request.dk_tag in new_tags:
            problems.append(
                Problem(
                    "dk_tag",
                    "tag_repeated",
                    "Data Replication Resource Tag and Root Tag must differ.",
                )
            )
    return problems


def _disk_size(value: int | str | None, problems: list[Problem]) -> int | None:
    typed = text(value)
    try:
        mib = int(typed)
    except ValueError:
        problems.append(
            Problem(
                "disk_size_mib",
                "not_integer",
                f"New Disk Size {typed!r} must be a whole number of MiB.",
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


# -- the plan ------------------------------------------------------------------------------
def plan_steps(cluster: Cluster, facts: Facts, request: CreateRequest) -> tuple[Step, ...]:
    """The ordered steps of ``request``; CheckFailed when it has problems."""
    problems = check_request(cluster, facts, request)
    if problems:
        raise CheckFailed(problems)
    r = request
    server, disk = text(r.server), text(r.source_disk)
    volume = volume_of(facts, server, disk)
    steps: list[Step] = []
    if volume is None:
        steps.append(CreateDisk(server, disk, int(text(r.disk_size_mib)) * 1024 * 1024))
    if r.hierarchy_type == NEW_FS:
        steps.append(MakeFileSystem(server, disk, r.fs_type or ""))
    steps.append(
        CreateDataKeeper(
            "dk",
            server,
            r.dk_tag,
            disk,
            r.bitmap_file,
            r.asynchronous,
            SwitchbackType(text(r.switchback_type).lower()),
            DEFAULT_CHUNK_SIZE,
            DEFAULT_SPEED_LIMIT_KBPS,
        )
    )
    if r.hierarchy_type != DK_ONLY:
        fs = volume.fs_label if r.hierarchy_type == EXISTING_FS and volume else r.fs_type
        assert r.root_tag is not None and r.mount_point is not None
        steps.append(CreateFileSystemResource("fs", "dk", server, r.root_tag, r.mount_point, fs))
    steps.append(BringNewInService(server, root_tag(r)))
    return tuple(steps)


def root_tag(request: CreateRequest) -> str:
    """The tag of the new hierarchy's root."""
    return (request.root_tag if request.hierarchy_type != DK_ONLY else request.dk_tag) or ""


def done_message(request: CreateRequest) -> str:
    return (
        f"{root_tag(request)} was created and is in service on {request.server} (priority 1). "
        "Extend it to another server to protect it."
    )
