"""Extend Resource Hierarchy: defaults and checks (pure: DOMAIN.md is the specification).

The wizard and ``lkctl extend`` both build an :class:`ExtendRequest`, ask
:func:`defaults` for every default, :func:`check_field` / :func:`check_page` /
:func:`check_request` for the problems, and :func:`plan_steps` for the steps a user
will see (``core.operations.extend`` runs them through the backend). Nothing here does
I/O: what the rules must know about the target's disks (is a bitmap location on btrfs,
writable, how much room the volume has) comes in :class:`~core.facts.Facts`, gathered
beforehand; :func:`needs` says which.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.checks import Problem, priority_problems, tag_problems
from core.errors import CheckFailed
from core.facts import Facts, Needs
from core.model import (
    PRIORITY_MAX,
    Cluster,
    Hierarchy,
    Resource,
    ResourceKind,
    ResourceState,
    SwitchbackType,
)
from core.plan import (
    AddResource,
    ConfigureMirror,
    CreateDataKeeperTarget,
    SetPriorities,
    StartResync,
    Step,
)
from core.rules import bitmaps
from core.rules.paths import norm, path_problem, text
from core.status import format_size

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
    facts: Facts,
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
    target = target_server or _default_target(cluster, h, template)
    initial = len(h.equivalencies) == 1
    pages = tuple(_dk_page(h, template, target, facts, rid) for rid in _dk_ids(h))
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
    on_template = [r.tag for r in cluster.instances_on(template)]
    notes = {}
    if not _default_target(cluster, h, template):
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


def default_target_priority(h: Hierarchy) -> int:
    """(ours) The smallest multiple of 10 above every priority in use, else the smallest
    unused priority."""
    used = {e.priority for e in h.equivalencies}
    candidate = (max(used, default=0) // 10 + 1) * 10
    if candidate <= PRIORITY_MAX:
        return candidate
    return next(p for p in range(1, PRIORITY_MAX + 1) if p not in used)


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


def _dk_page(h: Hierarchy, template: str, target: str, facts: Facts, rid: int) -> DataKeeperPage:
    dk = h.instance(rid, template)
    assert dk is not None
    fs_id = _filesystem_on(h, rid)
    fs = h.instance(fs_id, template) if fs_id is not None else None
    mirror = h.mirror(rid)
    bitmap, note = bitmaps.default_bitmap(facts, target, dk.tag)
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
    facts: Facts,
    request: ExtendRequest,
    field_name: str,
    resource_id: int | None = None,
) -> list[Problem]:
    """The problems of one field (as the user types or leaves it)."""
    if field_name in PRE_EXTEND_FIELDS:
        return [p for p in pre_extend_field_problems(cluster, request) if p.field == field_name]
    return [
        p
        for p in _extend_page_problems(cluster, facts, request, resource_id)
        if p.field == field_name and (resource_id is None or p.resource_id == resource_id)
    ]


def check_page(
    cluster: Cluster,
    facts: Facts,
    request: ExtendRequest,
    page: str,
    resource_id: int | None = None,
) -> list[Problem]:
    """Every problem of one page (``pre_extend``, or ``extend`` for one DataKeeper)."""
    if page == PRE_EXTEND_PAGE:
        problems = pre_extend_field_problems(cluster, request)
        if not problems:
            problems = _pre_extend_cross_checks(cluster, facts, request)
        return problems
    if page == EXTEND_PAGE:
        return _extend_page_problems(cluster, facts, request, resource_id)
    raise ValueError(f"no page {page!r}")


def check_request(cluster: Cluster, facts: Facts, request: ExtendRequest) -> list[Problem]:
    """Every problem of the whole request, the Pre-Extend page's first."""
    problems = check_page(cluster, facts, request, PRE_EXTEND_PAGE)
    return problems + _extend_page_problems(cluster, facts, request, None)


def _resolve(cluster: Cluster, request: ExtendRequest) -> _Resolved:
    found = _Resolved()
    names = _names(cluster)
    template = text(request.template_server)
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
    tag = text(request.tag_to_extend)
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
    target = text(request.target_server)
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
    switchback = text(request.switchback_type).lower()
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
    if request.template_priority is not None and text(request.template_priority) != "":
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
    cluster: Cluster, facts: Facts, request: ExtendRequest
) -> list[Problem]:
    """Checks that need valid fields: read-only tags free on the target, disk space."""
    r = _resolve(cluster, request)
    h, target = r.hierarchy, r.target
    assert h is not None and target is not None and r.template is not None
    problems = []
    taken = {inst.tag for inst in cluster.instances_on(target)}
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
        page = _dk_page(h, r.template, target, facts, rid)
        if path_problem(page.volume):
            continue
        volume = facts.path(target, page.volume)
        existing = volume.size or 0
        need = max(0, page.volume_size - existing)
        free = volume.free_bytes
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
        elif volume.exists and existing < page.volume_size:
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
    cluster: Cluster, facts: Facts, request: ExtendRequest, only: int | None
) -> list[Problem]:
    r = _resolve(cluster, request)
    h, target, template = r.hierarchy, r.target, r.template
    if h is None or template is None:
        return []
    problems: list[Problem] = []
    target_instances = cluster.instances_on(target) if target else []
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
        page = _dk_page(h, template, target or "", facts, rid)
        dk = request.datakeeper_for(rid) or page.defaults

        def add(field_name: str, code: str, message: str, rid: int = rid) -> None:
            problems.append(Problem(field_name, code, message, rid))

        if page.filesystem_id is not None:
            mount = dk.mount_point
            if mount is None or text(mount) == "":
                add("mount_point", "required", "Mount Point is required (an absolute path).")
            else:
                mount = text(mount)
                why = path_problem(mount)
                if why:
                    add("mount_point", "bad_path", f"Mount Point {mount!r} {why}")
                elif mount == "/":
                    add(
                        "mount_point",
                        "root_mount_point",
                        "Mount Point / is the root filesystem and cannot be protected; choose "
                        "a folder such as /data.",
                    )
                elif target and norm(mount) in {norm(m) for m in protected}:
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
            for code, message in bitmaps.problems(facts, target or "", dk.bitmap_file):
                add("bitmap_file", code, message)
    return problems


# -- what the rules need to know ----------------------------------------------------------
def needs(
    cluster: Cluster,
    request: ExtendRequest | None = None,
    *,
    template_server: str | None = None,
    tag: str | None = None,
    target_server: str | None = None,
) -> Needs:
    """The facts :func:`defaults` (for the given choices) and the checks of ``request``
    ask for: per DataKeeper resource, its volume and the bitmap locations on the target."""
    if request is not None:  # as typed: anything, checked later
        template_server, tag = text(request.template_server), text(request.tag_to_extend)
        target_server = text(request.target_server)
    try:
        h = _pick_hierarchy(cluster, template_server, tag)
    except CheckFailed:
        return Needs()
    template = template_server if template_server in _names(cluster) else None
    if template is None or h.instance(h.root_id, template) is None:
        template = h.in_service_server or h.home_server
    target = target_server or _default_target(cluster, h, template)
    found = Needs()
    for rid in _dk_ids(h):
        dk = h.instance(rid, template)
        if dk is None or not target:
            continue
        found |= bitmaps.default_needs(target, dk.tag)
        if dk.volume and not path_problem(dk.volume):
            found |= Needs.of_paths([(target, dk.volume)])
        chosen = request.datakeeper_for(rid) if request is not None else None
        if chosen is not None:
            found |= bitmaps.needs(target, chosen.bitmap_file)
    return found


# -- the plan --------------------------------------------------------------------------------
def plan_steps(cluster: Cluster, facts: Facts, request: ExtendRequest) -> tuple[Step, ...]:
    """The ordered steps of ``request`` (children first); CheckFailed when it has problems."""
    problems = check_request(cluster, facts, request)
    if problems:
        raise CheckFailed(problems)
    h = hierarchy_of(cluster, request)
    template, target = request.template_server, request.target_server
    full = complete(h, template, facts, request)
    steps: list[Step] = []
    for rid in reversed(h.resource_ids()):  # children first
        source = h.instance(rid, template)
        assert source is not None
        new_tag, _read_only = _target_tag(h, rid, source.tag, full)
        if source.kind is ResourceKind.DATAKEEPER:
            dk = full.datakeeper_for(rid)
            mirror = h.mirror(rid)
            assert dk is not None and mirror is not None
            mirror_source = h.instance(rid, mirror.source)
            new = Resource(
                rid,
                h.id,
                ResourceKind.DATAKEEPER,
                target,
                dk.dk_tag,
                ResourceState.OSU,
                volume=source.volume,
                bitmap_file=dk.bitmap_file,
            )
            steps.append(CreateDataKeeperTarget(new, mirror.volume_size))
            steps.append(
                ConfigureMirror(
                    rid,
                    dk.dk_tag,
                    mirror.source,
                    target,
                    dk.bitmap_file,
                    mirror_source.bitmap_file if mirror_source else None,
                    mirror.volume_size,
                    mirror.chunk_size,
                )
            )
            continue
        mount = source.mount_point
        if source.kind is ResourceKind.FILESYSTEM:
            mount = next(
                (d.mount_point for d in full.datakeeper if _filesystem_on(h, d.resource_id) == rid),
                source.mount_point,
            )
        new = dataclasses.replace(
            source, server=target, tag=new_tag, state=ResourceState.OSU, mount_point=mount
        )
        steps.append(AddResource(new))
    priorities = (
        (template, _priority(full.template_priority, h, template)),
        (target, int(full.target_priority)),
    )
    switchback = SwitchbackType(str(full.switchback_type).lower())
    steps.append(SetPriorities(h.id, h.root_tag, priorities, switchback))
    for rid in _dk_ids(h):
        dk = full.datakeeper_for(rid)
        assert dk is not None
        steps.append(StartResync(rid, dk.dk_tag, template, target))
    return tuple(steps)


def done_message(h: Hierarchy, target: str) -> str:
    if h.mirrors:
        return (
            f"{h.root_tag} was extended to {target}. The mirror is resyncing and becomes "
            f"Target when done; then test a switchover to {target}."
        )
    return f"{h.root_tag} was extended to {target}; test a switchover to {target}."


def hierarchy_of(cluster: Cluster, request: ExtendRequest) -> Hierarchy:
    """The hierarchy a (checked) request extends."""
    inst = cluster.find_tag(request.tag_to_extend, request.template_server)
    h = cluster.hierarchy(inst.hierarchy_id) if inst is not None else None
    if h is None:
        raise CheckFailed(
            [
                _p(
                    "tag_to_extend",
                    "unknown_tag",
                    f"There is no resource tagged {request.tag_to_extend!r} on "
                    f"{request.template_server}.",
                )
            ]
        )
    return h


# -- helpers --------------------------------------------------------------------------
def complete(h: Hierarchy, template: str, facts: Facts, request: ExtendRequest) -> ExtendRequest:
    """The request with a DataKeeper entry (defaults) for every DataKeeper resource."""
    entries = []
    for rid in _dk_ids(h):
        entry = request.datakeeper_for(rid)
        if entry is None:
            entry = _dk_page(h, template, request.target_server, facts, rid).defaults
        entries.append(entry)
    template_priority = request.template_priority
    if template_priority is not None and text(template_priority) == "":
        template_priority = None
    return dataclasses.replace(
        request,
        datakeeper=tuple(entries),
        target_priority=int(text(request.target_priority)),
        template_priority=int(text(template_priority)) if template_priority is not None else None,
        switchback_type=text(request.switchback_type).lower(),
    )


def _priority(value: int | str | None, h: Hierarchy, server: str) -> int:
    if value is not None and text(value) != "":
        return int(text(value))
    current = h.priority_of(server)
    assert current is not None
    return current


def _default_target(cluster: Cluster, h: Hierarchy, template: str) -> str:
    return next(
        (
            s.name
            for s in cluster.servers
            if s.state.is_alive and s.name not in h.servers and s.name != template
        ),
        "",
    )


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
