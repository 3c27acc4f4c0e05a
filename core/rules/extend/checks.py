"""Extend Resource Hierarchy: the checks of one field, one page, or the whole request.

In memory over the snapshot, except what comes in :class:`~core.facts.Facts` (disk
space on the target, the bitmap locations): nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.checks import Problem, priority_problems, tag_problems
from core.facts import Facts
from core.model import Cluster, Hierarchy, ResourceKind, SwitchbackType
from core.rules import bitmaps
from core.rules.extend.defaults import (
    _dk_ids,
    _dk_page,
    _names,
    default_target_priority,
    info_boxes,
)
from core.rules.extend.request import (
    EXTEND_PAGE,
    PRE_EXTEND_FIELDS,
    PRE_EXTEND_PAGE,
    ExtendRequest,
    _p,
)
from core.rules.paths import norm, path_problem, text
from core.status import format_size


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
