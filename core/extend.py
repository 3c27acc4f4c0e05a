"""Extend Resource Hierarchy: request → defaults → checks → plan → execute.

DOMAIN.md, "Extend Resource Hierarchy", is the specification. The wizard and ``lkctl
extend`` are two faces of this module: both build an :class:`ExtendRequest`, ask
:func:`defaults` for every default, :func:`check_field` / :func:`check_page` /
:func:`check_request` for the problems (nothing is changed by a check), :func:`plan` for
the steps a user will see, and :func:`execute` to do them: all rows in one store
transaction, every file action undone if a later step fails, and an undo journal so that
a process killed half way leaves, after restart, the hierarchy fully absent.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import commands, fields
from core.backends.lab import mirrors
from core.backend import LabBackend
from core.checks import Problem, priority_problems, tag_problems
from core.errors import CheckFailed, LkError, OperationError
from core.events import EventHub
from core.files import private_dir
from core.fsinfo import FsProbeError, filesystem_of
from core.backends.lab.journal import Journal, undo_action
from core.backends.lab.layout import LabLayout, default_bitmap_file
from core.model import (
    PRIORITY_MAX,
    Cluster,
    Hierarchy,
    MirrorState,
    MirrorTarget,
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

LABELS = {
    "template_server": "Template Server",
    "tag_to_extend": "Tag to Extend",
    "target_server": "Target Server",
    "switchback_type": "Switchback Type",
    "template_priority": "Template Priority",
    "target_priority": "Target Priority",
    "mount_point": "Mount Point",
    "root_tag": "Root Tag",
    "dk_tag": "DataKeeper Resource Tag",
    "bitmap_file": "Bitmap File",
}
PRE_EXTEND_FIELDS = (
    "template_server",
    "tag_to_extend",
    "target_server",
    "switchback_type",
    "template_priority",
    "target_priority",
)
EXTEND_FIELDS = ("mount_point", "root_tag", "dk_tag", "bitmap_file")
PRE_EXTEND_PAGE = "pre_extend"
EXTEND_PAGE = "extend"
NO_BITMAP_NOTE = "No bitmap: no intent log is kept, so every resync will be a full resync."
# Where a bitmap goes when /opt/LifeKeeper is on btrfs (first one that is not).
BITMAP_FALLBACK_DIRS = ("/var/lib/LifeKeeper", "/var/opt/LifeKeeper", "/etc/LifeKeeper")


# -- the request ----------------------------------------------------------------------
@dataclass(frozen=True)
class DataKeeperExtend:
    """The Extend page of one DataKeeper resource."""

    resource_id: int
    dk_tag: str
    bitmap_file: str | None  # None: no bitmap (every resync is full)
    mount_point: str | None = None  # only with a protected filesystem on top
    root_tag: str | None = None  # the filesystem's tag on the target


@dataclass(frozen=True)
class ExtendRequest:
    """Everything the wizard's pages or lkctl's options say, values as typed."""

    template_server: str
    tag_to_extend: str
    target_server: str
    switchback_type: str = SwitchbackType.INTELLIGENT.value
    target_priority: int | str = ""
    template_priority: int | str | None = None  # only on the initial extend
    datakeeper: tuple[DataKeeperExtend, ...] = ()

    def datakeeper_for(self, resource_id: int) -> DataKeeperExtend | None:
        return next((d for d in self.datakeeper if d.resource_id == resource_id), None)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExtendRequest:
        dks = tuple(DataKeeperExtend(**d) for d in data.get("datakeeper", ()))
        return cls(**{**data, "datakeeper": dks})


# -- defaults -------------------------------------------------------------------------
@dataclass(frozen=True)
class InfoBox:
    """One line of the information boxes: a tag and what it becomes on the target."""

    resource_id: int
    kind: ResourceKind
    template_tag: str
    target_tag: str
    read_only: bool


@dataclass(frozen=True)
class DataKeeperPage:
    """What the Extend page of one DataKeeper resource shows."""

    resource_id: int
    template_dk_tag: str
    filesystem_id: int | None  # the protected filesystem on top, if any
    volume: str
    volume_size: int
    defaults: DataKeeperExtend
    bitmap_note: str = ""  # why the default bitmap location is not the usual one

    @property
    def shown(self) -> tuple[str, ...]:
        if self.filesystem_id is None:
            return ("dk_tag", "bitmap_file")
        return EXTEND_FIELDS


@dataclass(frozen=True)
class ExtendDefaults:
    request: ExtendRequest
    hierarchy_id: int
    version: int
    initial: bool  # the hierarchy is on one server only
    shown: tuple[str, ...]  # Pre-Extend fields shown
    choices: dict[str, tuple[str, ...]]
    pages: tuple[DataKeeperPage, ...]
    info: tuple[InfoBox, ...]
    notes: dict[str, str] = field(default_factory=dict)


def defaults(
    cluster: Cluster,
    layout: LabLayout,
    *,
    template_server: str | None = None,
    tag: str | None = None,
    target_server: str | None = None,
    from_create: bool = False,
) -> ExtendDefaults:
    """The default of every field, which fields are shown, and the choices offered.

    ``template_server``/``tag`` preselect (context menu, or the end of Create);
    ``target_server`` asks for the defaults that depend on the target.
    Raises CheckFailed only when there is nothing at all to extend.
    """
    h = _pick_hierarchy(cluster, template_server, tag)
    template = template_server if template_server in _names(cluster) else None
    if template is None or h.instance(h.root_id, template) is None:
        template = h.in_service_server or h.home_server
    root = h.instance(h.root_id, template)
    tag_default = root.tag if root is not None else h.root_tag
    if tag is not None and _find_on(h, tag, template) is not None:
        tag_default = tag
    candidates = [
        s.name
        for s in cluster.servers
        if s.state.is_alive and s.name not in h.servers and s.name != template
    ]
    target = target_server or (candidates[0] if candidates else "")
    initial = len(h.equivalencies) == 1
    pages = tuple(_dk_page(h, template, target, layout, rid) for rid in _dk_ids(h))
    request = ExtendRequest(
        template_server=template,
        tag_to_extend=tag_default,
        target_server=target,
        switchback_type=SwitchbackType.INTELLIGENT.value,
        target_priority=default_target_priority(h),
        template_priority=h.priority_of(template) if initial else None,
        datakeeper=tuple(p.defaults for p in pages),
    )
    shown = [
        f
        for f in PRE_EXTEND_FIELDS
        if not (from_create and f in ("template_server", "tag_to_extend"))
        and not (f == "template_priority" and not initial)
    ]
    on_template = [r.tag for r in h_all_instances(cluster, template)]
    notes = {}
    if not candidates:
        notes["target_server"] = (
            f"Every alive server already has {h.root_tag}: there is no server left to extend to."
        )
    return ExtendDefaults(
        request=request,
        hierarchy_id=h.id,
        version=h.version,
        initial=initial,
        shown=tuple(shown),
        choices={
            "template_server": tuple(_names(cluster)),
            "tag_to_extend": tuple(on_template),
            "target_server": tuple(s for s in _names(cluster) if s != template),
            "switchback_type": tuple(t.value for t in SwitchbackType),
        },
        pages=pages,
        info=info_boxes(h, template, request),
        notes=notes,
    )


def h_all_instances(cluster: Cluster, server: str) -> list[Resource]:
    """Every resource on ``server``, hierarchy by hierarchy, in tree order."""
    found: list[Resource] = []
    for h in cluster.hierarchies:
        found.extend(h.instances_on(server))
    return found


def default_target_priority(h: Hierarchy) -> int:
    """(ours) The smallest multiple of 10 above every priority in use, else the smallest
    unused priority."""
    used = {e.priority for e in h.equivalencies}
    candidate = (max(used, default=0) // 10 + 1) * 10
    if candidate <= PRIORITY_MAX:
        return candidate
    return next(p for p in range(1, PRIORITY_MAX + 1) if p not in used)


def default_bitmap(layout: LabLayout, target: str, dk_tag: str) -> tuple[str, str]:
    """The default bitmap file on ``target`` and, when it is not the usual one, why."""
    usual = default_bitmap_file(dk_tag)
    if not target or not fields.on_btrfs(layout, target, usual):
        return usual, ""
    for folder in BITMAP_FALLBACK_DIRS:
        candidate = f"{folder}/bitmap_{dk_tag}"
        if not fields.on_btrfs(layout, target, candidate) and fields.writable(
            layout, target, candidate
        ):
            return candidate, (
                f"/opt/LifeKeeper on {target} is on btrfs, which cannot hold a DataKeeper "
                f"bitmap (btrfs cannot give the block map an external bitmap needs), so the "
                f"default was moved to {candidate}."
            )
    return usual, ""


def info_boxes(h: Hierarchy, template: str, request: ExtendRequest) -> tuple[InfoBox, ...]:
    boxes = []
    for rid in h.resource_ids():
        inst = h.instance(rid, template)
        if inst is None:
            continue
        target_tag, read_only = _target_tag(h, rid, inst.tag, request)
        boxes.append(InfoBox(rid, inst.kind, inst.tag, target_tag, read_only))
    return tuple(boxes)


def _target_tag(
    h: Hierarchy, rid: int, template_tag: str, request: ExtendRequest
) -> tuple[str, bool]:
    kind = h.kind_of(rid)
    if kind is ResourceKind.DATAKEEPER:
        dk = request.datakeeper_for(rid)
        return (dk.dk_tag if dk else template_tag), False
    if kind is ResourceKind.FILESYSTEM:
        for dk in request.datakeeper:
            if _filesystem_on(h, dk.resource_id) == rid and dk.root_tag is not None:
                return dk.root_tag, False
    return template_tag, True


def _dk_page(
    h: Hierarchy, template: str, target: str, layout: LabLayout, rid: int
) -> DataKeeperPage:
    dk = h.instance(rid, template)
    assert dk is not None
    fs_id = _filesystem_on(h, rid)
    fs = h.instance(fs_id, template) if fs_id is not None else None
    mirror = h.mirror(rid)
    bitmap, note = default_bitmap(layout, target, dk.tag)
    return DataKeeperPage(
        resource_id=rid,
        template_dk_tag=dk.tag,
        filesystem_id=fs_id,
        volume=dk.volume or "",
        volume_size=mirror.volume_size if mirror else 0,
        defaults=DataKeeperExtend(
            resource_id=rid,
            dk_tag=dk.tag,
            bitmap_file=bitmap,
            mount_point=fs.mount_point if fs else None,
            root_tag=fs.tag if fs else None,
        ),
        bitmap_note=note,
    )


# -- checks ---------------------------------------------------------------------------
@dataclass
class _Resolved:
    """What a request refers to, as far as it could be resolved."""

    hierarchy: Hierarchy | None = None
    template: str | None = None
    target: str | None = None
    problems: list[Problem] = field(default_factory=list)


def check_field(
    cluster: Cluster,
    layout: LabLayout,
    request: ExtendRequest,
    field_name: str,
    resource_id: int | None = None,
) -> list[Problem]:
    """The problems of one field (as the user types or leaves it)."""
    if field_name in PRE_EXTEND_FIELDS:
        return [p for p in pre_extend_field_problems(cluster, request) if p.field == field_name]
    return [
        p
        for p in _extend_page_problems(cluster, layout, request, resource_id)
        if p.field == field_name and (resource_id is None or p.resource_id == resource_id)
    ]


def check_page(
    cluster: Cluster,
    layout: LabLayout,
    request: ExtendRequest,
    page: str,
    resource_id: int | None = None,
) -> list[Problem]:
    """Every problem of one page (``pre_extend``, or ``extend`` for one DataKeeper)."""
    if page == PRE_EXTEND_PAGE:
        problems = pre_extend_field_problems(cluster, request)
        if not problems:
            problems = _pre_extend_cross_checks(cluster, layout, request)
        return problems
    if page == EXTEND_PAGE:
        return _extend_page_problems(cluster, layout, request, resource_id)
    raise ValueError(f"no page {page!r}")


def check_request(cluster: Cluster, layout: LabLayout, request: ExtendRequest) -> list[Problem]:
    """Every problem of the whole request, the Pre-Extend page's first."""
    problems = check_page(cluster, layout, request, PRE_EXTEND_PAGE)
    return problems + _extend_page_problems(cluster, layout, request, None)


def _resolve(cluster: Cluster, request: ExtendRequest) -> _Resolved:
    found = _Resolved()
    names = _names(cluster)
    template = fields.text(request.template_server)
    if template == "":
        found.problems.append(_p("template_server", "required", "Choose the Template Server."))
    elif template not in names:
        found.problems.append(
            _p(
                "template_server",
                "unknown_server",
                f"Template Server {template!r} is not a server of this cluster "
                f"(servers: {', '.join(names)}).",
            )
        )
    else:
        found.template = template
    tag = fields.text(request.tag_to_extend)
    if tag == "":
        found.problems.append(_p("tag_to_extend", "required", "Choose the Tag to Extend."))
    elif found.template is not None:
        inst = cluster.find_tag(tag, found.template)
        if inst is None:
            found.problems.append(
                _p(
                    "tag_to_extend",
                    "unknown_tag",
                    f"There is no resource tagged {tag!r} on {found.template}; choose one of "
                    f"the resources of the Template Server.",
                )
            )
        else:
            found.hierarchy = cluster.hierarchy(inst.hierarchy_id)
            if not inst.state.in_service:
                where = found.hierarchy.in_service_server if found.hierarchy else None
                hint = (
                    f" It is in service on {where}: extend from there."
                    if where
                    else " Bring it in service first."
                )
                found.problems.append(
                    _p(
                        "tag_to_extend",
                        "not_in_service",
                        f"Tag {tag!r} is not in service on {found.template} (it is "
                        f"{inst.state.cell_text}).{hint}",
                    )
                )
    target = fields.text(request.target_server)
    if target == "":
        found.problems.append(
            _p("target_server", "required", "Choose the Target Server to extend to.")
        )
    elif target not in names:
        found.problems.append(
            _p(
                "target_server",
                "unknown_server",
                f"Target Server {target!r} is not a server of this cluster "
                f"(servers: {', '.join(names)}).",
            )
        )
    else:
        found.target = target
    return found


def pre_extend_field_problems(cluster: Cluster, request: ExtendRequest) -> list[Problem]:
    """The problems of the Pre-Extend fields (in memory: no file system is probed)."""
    r = _resolve(cluster, request)
    problems = list(r.problems)
    h, template, target = r.hierarchy, r.template, r.target
    if target is not None:
        server = cluster.server(target)
        if template is not None and target == template:
            problems.append(
                _p(
                    "target_server",
                    "same_as_template",
                    f"Target Server {target} is the Template Server; choose another server.",
                )
            )
        elif server is not None and not server.state.is_alive:
            problems.append(
                _p(
                    "target_server",
                    "target_not_alive",
                    f"Target Server {target} is {server.state.value}; start it or choose an "
                    "alive server.",
                )
            )
        elif h is not None and target in h.servers:
            problems.append(
                _p(
                    "target_server",
                    "already_extended",
                    f"{h.root_tag} is already extended to {target} (priority "
                    f"{h.priority_of(target)}); choose a server that does not have it.",
                )
            )
    switchback = fields.text(request.switchback_type).lower()
    if switchback not in {t.value for t in SwitchbackType}:
        problems.append(
            _p(
                "switchback_type",
                "unknown_switchback",
                f"Switchback Type {request.switchback_type!r} is not one of intelligent, "
                "automatic.",
            )
        )
    elif switchback == SwitchbackType.AUTOMATIC.value and (h is None or h.depends_on_datakeeper()):
        problems.append(
            _p(
                "switchback_type",
                "automatic_with_datakeeper",
                "Switchback Type automatic is not supported: this hierarchy contains a "
                "DataKeeper resource, and DataKeeper supports only intelligent switchback "
                "(an administrator switches back by hand). Choose intelligent.",
            )
        )
    initial = h is not None and len(h.equivalencies) == 1
    template_priority: int | None = None
    if request.template_priority is not None and fields.text(request.template_priority) != "":
        if h is not None and not initial:
            problems.append(
                _p(
                    "template_priority",
                    "not_initial_extend",
                    f"Template Priority can be set only on the initial extend; {h.root_tag} is "
                    f"already on {', '.join(h.servers)}. Leave it out.",
                )
            )
        else:
            template_priority, found = priority_problems(
                "template_priority", "Template Priority", request.template_priority
            )
            problems += found
    elif initial and h is not None and template is not None:
        template_priority = h.priority_of(template)
    target_priority, found = priority_problems(
        "target_priority", "Target Priority", request.target_priority
    )
    problems += found
    if h is not None and target_priority is not None:
        owner = next(
            (
                e.server
                for e in h.equivalencies
                if e.priority == target_priority and e.server != template
            ),
            None,
        )
        if owner is not None:
            problems.append(
                _p(
                    "target_priority",
                    "priority_in_use",
                    f"Target Priority {target_priority} is already used by {owner} for "
                    f"{h.root_tag}; choose an unused one (default "
                    f"{default_target_priority(h)}).",
                )
            )
        elif template_priority is not None and target_priority == template_priority:
            problems.append(
                _p(
                    "target_priority",
                    "same_as_template_priority",
                    f"Target Priority {target_priority} equals the Template Priority; "
                    "priorities must be unique.",
                )
            )
        elif not initial and template is not None and target_priority == h.priority_of(template):
            problems.append(
                _p(
                    "target_priority",
                    "priority_in_use",
                    f"Target Priority {target_priority} is already used by {template} for "
                    f"{h.root_tag}; choose an unused one (default "
                    f"{default_target_priority(h)}).",
                )
            )
    return problems


def _pre_extend_cross_checks(
    cluster: Cluster, layout: LabLayout, request: ExtendRequest
) -> list[Problem]:
    """Checks that need valid fields: read-only tags free on the target, disk space."""
    r = _resolve(cluster, request)
    h, target = r.hierarchy, r.target
    assert h is not None and target is not None and r.template is not None
    problems = []
    taken = {inst.tag for inst in h_all_instances(cluster, target)}
    for box in info_boxes(h, r.template, request):
        if box.read_only and box.target_tag in taken:
            problems.append(
                _p(
                    "target_server",
                    "tag_in_use_on_target",
                    f"{target} already has a resource tagged {box.target_tag!r}, which "
                    f"{h.root_tag} needs there; remove it or choose another target.",
                )
            )
    for rid in _dk_ids(h):
        page = _dk_page(h, r.template, target, layout, rid)
        volume = fields.local_path(layout, target, page.volume)
        if volume is None:
            continue
        existing = volume.stat().st_size if volume.exists() else 0
        need = max(0, page.volume_size - existing)
        free = fields.free_bytes(volume.parent)
        if free is not None and free < need:
            problems.append(
                _p(
                    "target_server",
                    "no_disk_space",
                    f"{target} has {format_size(free)} free for {page.volume}, but the mirror "
                    f"of {page.template_dk_tag} needs {format_size(page.volume_size)}; free "
                    "space on it or choose another target.",
                )
            )
        elif volume.exists() and existing < page.volume_size:
            problems.append(
                _p(
                    "target_server",
                    "target_volume_too_small",
                    f"{page.volume} on {target} is {format_size(existing)}, smaller than the "
                    f"source ({format_size(page.volume_size)}).",
                )
            )
    return problems


def _extend_page_problems(
    cluster: Cluster, layout: LabLayout, request: ExtendRequest, only: int | None
) -> list[Problem]:
    r = _resolve(cluster, request)
    h, target, template = r.hierarchy, r.target, r.template
    if h is None or template is None:
        return []
    problems: list[Problem] = []
    target_instances = h_all_instances(cluster, target) if target else []
    taken = {inst.tag for inst in target_instances}
    protected = {
        inst.mount_point
        for inst in target_instances
        if inst.kind is ResourceKind.FILESYSTEM and inst.mount_point
    }
    new_tags: dict[str, int] = {}
    for rid in _dk_ids(h):
        if only is not None and rid != only:
            continue
        page = _dk_page(h, template, target or "", layout, rid)
        dk = request.datakeeper_for(rid) or page.defaults

        def add(field_name: str, code: str, message: str, rid: int = rid) -> None:
            problems.append(Problem(field_name, code, message, rid))

        if page.filesystem_id is not None:
            mount = dk.mount_point
            if mount is None or fields.text(mount) == "":
                add("mount_point", "required", "Mount Point is required (an absolute path).")
            else:
                mount = fields.text(mount)
                path_problem = fields.path_problem(mount)
                if path_problem:
                    add("mount_point", "bad_path", f"Mount Point {mount!r} {path_problem}")
                elif mount == "/":
                    add(
                        "mount_point",
                        "root_mount_point",
                        "Mount Point / is the root filesystem and cannot be protected; choose "
                        "a folder such as /data.",
                    )
                elif target and fields.norm(mount) in {fields.norm(m) for m in protected}:
                    add(
                        "mount_point",
                        "mount_point_protected",
                        f"Mount Point {mount} is already protected on {target}; choose "
                        "another mount point.",
                    )
            root_tag = dk.root_tag if dk.root_tag is not None else ""
            found = tag_problems("root_tag", "Root Tag", root_tag)
            for p in found:
                add(p.field, p.code, p.message)
            if not found:
                if root_tag in taken:
                    add(
                        "root_tag",
                        "tag_in_use_on_target",
                        f"Root Tag {root_tag!r} is already used on {target}; choose a free tag.",
                    )
                new_tags[root_tag] = new_tags.get(root_tag, 0) + 1
        found = tag_problems("dk_tag", "DataKeeper Resource Tag", dk.dk_tag)
        for p in found:
            add(p.field, p.code, p.message)
        if not found:
            if dk.dk_tag in taken:
                add(
                    "dk_tag",
                    "tag_in_use_on_target",
                    f"DataKeeper Resource Tag {dk.dk_tag!r} is already used on {target}; "
                    "choose a free tag.",
                )
            elif new_tags.get(dk.dk_tag):
                add(
                    "dk_tag",
                    "tag_repeated",
                    f"DataKeeper Resource Tag {dk.dk_tag!r} is also the Root Tag; tags must "
                    "differ.",
                )
            new_tags[dk.dk_tag] = new_tags.get(dk.dk_tag, 0) + 1
        if dk.bitmap_file is not None:
            for code, message in bitmap_problems(layout, target or "", dk.bitmap_file):
                add("bitmap_file", code, message)
    return problems


def bitmap_problems(layout: LabLayout, server: str, bitmap_file: str) -> list[tuple[str, str]]:
    """(code, message) for a bitmap file path on ``server``; [] when it is usable."""
    text = fields.text(bitmap_file)
    if text == "":
        return [
            (
                "required",
                "Bitmap File is empty: give a path such as /opt/LifeKeeper/bitmap_<tag>, "
                "or choose None.",
            )
        ]
    path_problem = fields.path_problem(text)
    if path_problem:
        return [("bad_path", f"Bitmap File {text!r} {path_problem}")]
    if text.endswith("/"):
        return [("bitmap_is_directory", f"Bitmap File {text} names a folder; add a file name.")]
    if not server:
        return []
    local = fields.local_path(layout, server, text)
    if local is None:
        return [("bad_path", f"Bitmap File {text!r} must not contain '..'.")]
    if local.is_dir():
        return [
            (
                "bitmap_is_directory",
                f"Bitmap File {text} is an existing folder on {server}; give a file path "
                f"inside it, e.g. {text.rstrip('/')}/bitmap_<tag>.",
            )
        ]
    try:
        info = filesystem_of(local)
    except FsProbeError as exc:
        return [("bad_path", f"Bitmap File {text!r}: {exc}")]
    if info.is_btrfs:
        return [
            (
                "bitmap_on_btrfs",
                f"Bitmap File {text} is on btrfs (mounted at "
                f"{fields.server_path(layout, server, Path(info.mount_point))}) on {server}: "
                "DataKeeper cannot use a bitmap there (configuring the mirror fails with "
                "'invalid argument', because btrfs cannot give the block map an external "
                "bitmap needs). Choose a folder on ext4 or xfs, e.g. under /var/lib, "
                "or None.",
            )
        ]
    folder = Path(info.path_checked)
    if not os.access(folder, os.W_OK | os.X_OK):
        return [
            (
                "bitmap_folder_read_only",
                f"Bitmap File {text}: the folder {fields.server_path(layout, server, folder)} on "
                f"{server} is read-only; choose a writable folder, or None.",
            )
        ]
    return []


# -- plan and execute -----------------------------------------------------------------
@dataclass
class ExtendContext:
    """What the steps of one extend share while they run."""

    backend: LabBackend
    hierarchy: Hierarchy
    request: ExtendRequest
    journal: Journal
    txn: Txn | None = None
    undo: list[dict[str, Any]] = field(default_factory=list)

    @property
    def layout(self) -> LabLayout:
        return self.backend.layout

    @property
    def rows(self) -> Txn:
        assert self.txn is not None, "steps that write rows run inside the transaction"
        return self.txn

    def record(self, action: dict[str, Any]) -> None:
        """Before a file action: how to undo it, in memory and in the durable journal."""
        self.journal.record(action)
        self.undo.append(action)


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[ExtendContext], None] = field(repr=False, compare=False)
    after_commit: bool = False  # runs once the rows are committed (starting a resync)


@dataclass(frozen=True)
class ExtendPlan:
    request: ExtendRequest
    hierarchy_id: int
    version: int
    steps: tuple[Step, ...]

    @property
    def titles(self) -> list[str]:
        return [s.title for s in self.steps]


@dataclass(frozen=True)
class ExtendResult:
    hierarchy_id: int
    target_server: str
    steps: tuple[str, ...]
    message: str


StepCallback = Callable[[int, int, str, str], None]  # index, total, title, status


def plan(cluster: Cluster, layout: LabLayout, request: ExtendRequest) -> ExtendPlan:
    """The ordered steps of ``request``; raises CheckFailed when it has problems."""
    problems = check_request(cluster, layout, request)
    if problems:
        raise CheckFailed(problems)
    inst = cluster.find_tag(request.tag_to_extend, request.template_server)
    assert inst is not None
    h = cluster.hierarchy(inst.hierarchy_id)
    assert h is not None
    template, target = request.template_server, request.target_server
    full = _complete(h, template, layout, request)
    steps: list[Step] = []
    for rid in reversed(h.resource_ids()):  # children first
        kind = h.kind_of(rid)
        source = h.instance(rid, template)
        assert source is not None
        new_tag, _ro = _target_tag(h, rid, source.tag, full)
        if kind is ResourceKind.DATAKEEPER:
            dk = full.datakeeper_for(rid)
            assert dk is not None
            mirror = h.mirror(rid)
            assert mirror is not None
            bitmap = dk.bitmap_file or "None (every resync is a full resync)"
            steps.append(
                Step(
                    f"Create DataKeeper resource {dk.dk_tag} on {target} "
                    f"(volume {source.volume}, {format_size(mirror.volume_size)})",
                    _create_dk(rid, dk),
                )
            )
            steps.append(
                Step(
                    f"Configure mirror {dk.dk_tag}: {mirror.source} → {target} with bitmap "
                    f"{bitmap}",
                    _configure_mirror(rid, dk),
                )
            )
        elif kind is ResourceKind.FILESYSTEM:
            mount = next(
                (d.mount_point for d in full.datakeeper if _filesystem_on(h, d.resource_id) == rid),
                source.mount_point,
            )
            steps.append(
                Step(
                    f"Create filesystem resource {new_tag} on {target} (mount point {mount})",
                    _create_plain(rid, new_tag, mount),
                )
            )
        else:
            steps.append(
                Step(
                    f"Create {kind.label} resource {new_tag} on {target}",
                    _create_plain(rid, new_tag, None),
                )
            )
    prios = [f"{template}={_priority(full.template_priority, h, template)}"]
    prios.append(f"{target}={int(full.target_priority)}")
    steps.append(Step(f"Set priorities of {h.root_tag}: {', '.join(prios)}", _set_priorities))
    for rid in _dk_ids(h):
        dk = full.datakeeper_for(rid)
        assert dk is not None
        steps.append(
            Step(
                f"Start resync of {dk.dk_tag} from {template} to {target}",
                _start_resync(rid),
                after_commit=True,
            )
        )
    return ExtendPlan(full, h.id, h.version, tuple(steps))


def execute(
    backend: LabBackend,
    extend_plan: ExtendPlan,
    session: Session,
    *,
    hub: EventHub | None = None,
    on_step: StepCallback | None = None,
    cancel: threading.Event | None = None,
) -> ExtendResult:
    """Run the plan: all or nothing. Raises OperationError naming the failed step.

    ``on_step(index, total, title, status)`` is called with status "running", "done",
    "failed"; ``cancel`` is checked before each step (a cancelled extend is rolled back).
    """
    request = extend_plan.request
    store = backend.store
    authorize(
        store,
        session,
        Op.EXTEND_HIERARCHY,
        f"extend {request.tag_to_extend} to {request.target_server}",
        commands.extend(request),
    )
    h = store.hierarchy(extend_plan.hierarchy_id)
    if h is None:
        raise OperationError("the hierarchy no longer exists; reload and try again")
    out = OperationLog(
        f"extend {h.root_tag} to {request.target_server}",
        hub,
        session,
        commands.extend(request),
    )
    steps = extend_plan.steps
    total = len(steps)

    def report(index: int, status: str) -> None:
        if on_step is not None:
            on_step(index, total, steps[index].title, status)

    out.say(
        "INFO",
        f"Extending {h.root_tag} from {request.template_server} to "
        f"{request.target_server} ({total} steps)",
    )
    current = -1
    with Journal(store, out.operation) as jour:
        ctx = ExtendContext(backend, h, request, jour)
        try:
            with store.transaction() as txn:
                ctx.txn = txn
                txn.claim(h.id, extend_plan.version)
                for current, step in enumerate(steps):
                    if step.after_commit:
                        continue
                    if cancel is not None and cancel.is_set():
                        raise OperationError("cancelled by the user", step=step.title)
                    report(current, "running")
                    step.run(ctx)
                    out.say("INFO", f"[{current + 1}/{total}] {step.title}: done")
                    report(current, "done")
                jour.mark_committed(txn)
                out.flush(txn)
                current = -1
        except BaseException as exc:
            reason = _reason(exc)
            title = steps[current].title if current >= 0 else "before the first step"
            left = _roll_back(ctx)
            if current >= 0:
                report(current, "failed")
            out.say("ERROR", f"Step failed: {title}: {reason}")
            if left:
                jour.keep_for_recovery()
                out.say(
                    "WARNING",
                    f"Could not undo everything now ({left}); it will be "
                    "undone when LK Console next opens the lab.",
                )
            else:
                out.say("INFO", f"Rolled back: {h.root_tag} is exactly as before.")
            out.finish(store, ok=False, message=reason)
            if isinstance(exc, LkError) and not isinstance(exc, OperationError):
                raise
            if not isinstance(exc, Exception):
                raise
            raise OperationError(reason, step=title) from exc
    # Committed: the extension exists. Start what runs on its own (the resyncs).
    for index, step in enumerate(steps):
        if step.after_commit:
            report(index, "running")
            try:
                step.run(ctx)
            except Exception as exc:
                report(index, "failed")
                reason = _reason(exc)
                message = (
                    f"{h.root_tag} was extended to {request.target_server} (every step up to "
                    f"the commit was done), but step {index + 1} failed: {step.title}: "
                    f"{reason}. Start it with `lkctl mirror resume` once the cause is fixed."
                )
                out.say("ERROR", message)
                out.finish(store, ok=False, message=message)
                raise OperationError(message, committed=True) from exc
            out.say("INFO", f"[{index + 1}/{total}] {step.title}: started")
            report(index, "done")
    message = (
        f"{h.root_tag} was extended to {request.target_server}. The mirror is resyncing and "
        f"becomes Target when done; then test a switchover to {request.target_server}."
    )
    out.say("INFO", message)
    out.finish(store, ok=True, message=message)
    return ExtendResult(h.id, request.target_server, tuple(extend_plan.titles), message)


def extend(
    backend: LabBackend,
    request: ExtendRequest,
    session: Session,
    *,
    hub: EventHub | None = None,
    on_step: StepCallback | None = None,
) -> ExtendResult:
    """Plan and execute in one call (checks included)."""
    return execute(
        backend,
        plan(backend.cluster(), backend.layout, request),
        session,
        hub=hub,
        on_step=on_step,
    )


# -- the steps ------------------------------------------------------------------------
def _create_dk(rid: int, dk: DataKeeperExtend) -> Callable[[ExtendContext], None]:
    def run(ctx: ExtendContext) -> None:
        h, target = ctx.hierarchy, ctx.request.target_server
        source = h.instance(rid, ctx.request.template_server)
        mirror = h.mirror(rid)
        assert source is not None and mirror is not None and source.volume is not None
        volume = ctx.layout.server_path(target, source.volume)

        def make(root: Path) -> None:
            if not volume.exists():
                ctx.record({"delete_file": str(volume)})
            mirrors.prepare_target_volume(volume, mirror.volume_size)

        ctx.backend.run_step(target, make)
        ctx.rows.add_instance(
            Resource(
                resource_id=rid,
                hierarchy_id=h.id,
                kind=ResourceKind.DATAKEEPER,
                server=target,
                tag=dk.dk_tag,
                state=ResourceState.OSU,
                volume=source.volume,
                bitmap_file=dk.bitmap_file,
            )
        )

    return run


def _configure_mirror(rid: int, dk: DataKeeperExtend) -> Callable[[ExtendContext], None]:
    def run(ctx: ExtendContext) -> None:
        h, target = ctx.hierarchy, ctx.request.target_server
        mirror = h.mirror(rid)
        source = h.instance(rid, mirror.source) if mirror else None
        assert mirror is not None and source is not None
        layout = ctx.layout
        # The target's own bitmap (used when it becomes the source): btrfs fails here.
        if dk.bitmap_file is not None:
            target_bitmap = layout.server_path(target, dk.bitmap_file)
            ctx.backend.run_step(
                target,
                lambda _root: _journaled_create_bitmap(
                    ctx, target_bitmap, mirror.volume_size, mirror.chunk_size
                ),
            )
        # The source's intent log gets a section for the new target, all dirty.
        if source.bitmap_file is not None:
            source_bitmap = layout.server_path(mirror.source, source.bitmap_file)
            ctx.backend.run_step(
                mirror.source,
                lambda _root: _journaled_add_target(
                    ctx, source_bitmap, target, mirror.volume_size, mirror.chunk_size
                ),
            )
        ctx.rows.set_mirror_target(
            rid,
            MirrorTarget(
                target,
                MirrorState.RESYNCING,
                reason="initial full resync after extend",
                bytes_total=mirror.volume_size,
            ),
        )

    return run


def _journaled_create_bitmap(ctx: ExtendContext, path: Path, size: int, chunk: int) -> None:
    if not path.exists():
        ctx.record({"delete_file": str(path)})
    mirrors.create_bitmap(path, size, chunk)


def _journaled_add_target(
    ctx: ExtendContext, path: Path, target: str, size: int, chunk: int
) -> None:
    if path.exists():
        ctx.record({"remove_bitmap_target": [str(path), target]})
    else:
        ctx.record({"delete_file": str(path)})
    mirrors.add_bitmap_target(path, target, size, chunk)


def _create_plain(rid: int, tag: str, mount: str | None) -> Callable[[ExtendContext], None]:
    def run(ctx: ExtendContext) -> None:
        h, target = ctx.hierarchy, ctx.request.target_server
        source = h.instance(rid, ctx.request.template_server)
        assert source is not None
        if mount is not None:
            folder = ctx.layout.server_path(target, mount)

            def make(_root: Path) -> None:
                if not folder.exists():
                    ctx.record({"rmdir": str(folder)})
                    private_dir(folder)

            ctx.backend.run_step(target, make)
        ctx.rows.add_instance(
            dataclasses.replace(
                source,
                server=target,
                tag=tag,
                state=ResourceState.OSU,
                mount_point=mount if mount is not None else source.mount_point,
            )
        )

    return run


def _set_priorities(ctx: ExtendContext) -> None:
    h, request = ctx.hierarchy, ctx.request
    template = request.template_server
    ctx.rows.set_priority(h.id, template, _priority(request.template_priority, h, template))
    ctx.rows.set_priority(h.id, request.target_server, int(request.target_priority))
    ctx.rows.set_switchback(h.id, SwitchbackType(request.switchback_type.lower()))


def _start_resync(rid: int) -> Callable[[ExtendContext], None]:
    def run(ctx: ExtendContext) -> None:
        mirrors.start_resync(ctx.backend.store.home, rid, ctx.request.target_server)

    return run


def _roll_back(ctx: ExtendContext) -> str:
    """Undo the file actions done so far, newest first; returns what could not be."""
    while ctx.undo:
        action = ctx.undo[-1]
        try:
            undo_action(action)
        except OSError as exc:
            log.error("undo of %s failed (left for recovery at next start): %s", action, exc)
            return f"{exc.strerror or exc}"
        ctx.undo.pop()
    return ""


# -- helpers --------------------------------------------------------------------------
def _complete(
    h: Hierarchy, template: str, layout: LabLayout, request: ExtendRequest
) -> ExtendRequest:
    """The request with a DataKeeper entry (defaults) for every DataKeeper resource."""
    entries = []
    for rid in _dk_ids(h):
        entry = request.datakeeper_for(rid)
        if entry is None:
            entry = _dk_page(h, template, request.target_server, layout, rid).defaults
        entries.append(entry)
    template_priority = request.template_priority
    if template_priority is not None and fields.text(template_priority) == "":
        template_priority = None
    return dataclasses.replace(
        request,
        datakeeper=tuple(entries),
        target_priority=int(fields.text(request.target_priority)),
        template_priority=int(fields.text(template_priority))
        if template_priority is not None
        else None,
        switchback_type=fields.text(request.switchback_type).lower(),
    )


def _priority(value: int | str | None, h: Hierarchy, server: str) -> int:
    if value is not None and fields.text(value) != "":
        return int(fields.text(value))
    current = h.priority_of(server)
    assert current is not None
    return current


def _pick_hierarchy(cluster: Cluster, template: str | None, tag: str | None) -> Hierarchy:
    if tag:
        inst = cluster.find_tag(tag, template) or cluster.find_tag(tag)
        if inst is not None:
            h = cluster.hierarchy(inst.hierarchy_id)
            if h is not None:
                return h
    if template:
        for h in cluster.hierarchies:
            if h.in_service_server == template:
                return h
    alive = {s.name for s in cluster.servers if s.state.is_alive}
    for h in cluster.hierarchies:
        if h.in_service_server and alive - set(h.servers):
            return h
    if cluster.hierarchies:
        return cluster.hierarchies[0]
    raise CheckFailed(
        [
            _p(
                "tag_to_extend",
                "no_hierarchy",
                "There is no resource hierarchy to extend; create one first.",
            )
        ]
    )


def _find_on(h: Hierarchy, tag: str, server: str) -> Resource | None:
    return next((r for r in h.resources if r.tag == tag and r.server == server), None)


def _dk_ids(h: Hierarchy) -> list[int]:
    return [rid for rid in h.resource_ids() if h.kind_of(rid) is ResourceKind.DATAKEEPER]


def _filesystem_on(h: Hierarchy, dk_id: int) -> int | None:
    parent = h.parent(dk_id)
    if parent is not None and h.kind_of(parent) is ResourceKind.FILESYSTEM:
        return parent
    return None


def _names(cluster: Cluster) -> list[str]:
    return [s.name for s in cluster.servers]


def _p(field_name: str, code: str, message: str) -> Problem:
    return Problem(field_name, code, message)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
        return f"{text} ({exc.filename})" if exc.filename else text
    if isinstance(exc, OperationError) and exc.step:
        return str(exc).split(": ", 1)[-1]
    return str(exc) or type(exc).__name__
