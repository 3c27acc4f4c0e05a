"""Extend Resource Hierarchy: the defaults, the information boxes and the Extend pages.

Also the lookups every layer of the extend rules shares: which hierarchy and template a
choice means, its DataKeeper resources and the filesystem on top of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import CheckFailed
from core.facts import Facts
from core.model import (
    PRIORITY_MAX,
    Cluster,
    Hierarchy,
    Resource,
    ResourceKind,
    SwitchbackType,
)
from core.rules import bitmaps
from core.rules.extend.request import (
    EXTEND_FIELDS,
    PRE_EXTEND_FIELDS,
    DataKeeperExtend,
    ExtendRequest,
    _p,
)


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
    mirror_asynchronous: bool = False  # the mirror's mode: a target's default

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
    template = _template_of(cluster, h, template_server)
    target = target_server or _default_target(cluster, h, template)
    initial = len(h.equivalencies) == 1
    pages = tuple(_dk_page(h, template, target, facts, rid) for rid in _dk_ids(h))
    request = ExtendRequest(
        template_server=template,
        tag_to_extend=_default_tag(h, template, tag),
        target_server=target,
        switchback_type=SwitchbackType.INTELLIGENT.value,
        target_priority=default_target_priority(h),
        template_priority=h.priority_of(template) if initial else None,
        datakeeper=tuple(p.defaults for p in pages),
    )
    return ExtendDefaults(
        request=request,
        hierarchy_id=h.id,
        version=h.version,
        initial=initial,
        shown=_shown_fields(initial, from_create),
        choices=_choices(cluster, template),
        pages=pages,
        info=info_boxes(h, template, request),
        notes=_notes(cluster, h, template),
    )


def _template_of(cluster: Cluster, h: Hierarchy, template_server: str | None) -> str:
    """The Template Server: the one chosen when it has the hierarchy, else where it runs."""
    template = template_server if template_server in _names(cluster) else None
    if template is None or h.instance(h.root_id, template) is None:
        template = h.in_service_server or h.home_server
    return template


def _default_tag(h: Hierarchy, template: str, tag: str | None) -> str:
    """The Tag to Extend: the one chosen when it is on the template, else the root's."""
    root = h.instance(h.root_id, template)
    tag_default = root.tag if root is not None else h.root_tag
    if tag is not None and _find_on(h, tag, template) is not None:
        tag_default = tag
    return tag_default


def _shown_fields(initial: bool, from_create: bool) -> tuple[str, ...]:
    """The Pre-Extend fields shown (at the end of Create, template and tag are given)."""
    shown = [
        f
        for f in PRE_EXTEND_FIELDS
        if not (from_create and f in ("template_server", "tag_to_extend"))
        and not (f == "template_priority" and not initial)
    ]
    return tuple(shown)


def _choices(cluster: Cluster, template: str) -> dict[str, tuple[str, ...]]:
    on_template = [r.tag for r in cluster.instances_on(template)]
    return {
        "template_server": tuple(_names(cluster)),
        "tag_to_extend": tuple(on_template),
        "target_server": tuple(s for s in _names(cluster) if s != template),
        "switchback_type": tuple(t.value for t in SwitchbackType),
    }


def _notes(cluster: Cluster, h: Hierarchy, template: str) -> dict[str, str]:
    notes = {}
    if not _default_target(cluster, h, template):
        notes["target_server"] = (
            f"Every alive server already has {h.root_tag}: there is no server left to extend to."
        )
    return notes


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
        mirror_asynchronous=mirror.asynchronous if mirror else False,
    )


# -- lookups ----------------------------------------------------------------------------
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
