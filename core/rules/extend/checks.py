"""Extend Resource Hierarchy: the checks of one field, one page, or the whole request.

In memory over the snapshot, except what comes in :class:`~core.facts.Facts` (disk
space on the target, the bitmap locations): nothing here does I/O.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field

from core.checks import Problem, priority_problems, tag_problems
from core.facts import Facts
from core.model import Cluster, Hierarchy, ResourceKind, SwitchbackType
from core.rules import bitmaps
from core.rules.extend.defaults import (
    DataKeeperPage,
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
    DataKeeperExtend,
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


# -- what the request refers to ---------------------------------------------------------
def _resolve(cluster: Cluster, request: ExtendRequest) -> _Resolved:
    """The template, hierarchy and target ``request`` names, and the problems of naming."""
    found = _Resolved()
    names = _names(cluster)
    found.template = _server_choice(
        "template_server",
        "Template Server",
        "Choose the Template Server.",
        text(request.template_server),
        names,
        found.problems,
    )
    _resolve_tag(cluster, text(request.tag_to_extend), found)
    found.target = _server_choice(
        "target_server",
        "Target Server",
        "Choose the Target Server to extend to.",
        text(request.target_server),
        names,
        found.problems,
    )
    return found


def _server_choice(
    field_name: str,
    label: str,
    required: str,
    server: str,
    names: list[str],
    problems: list[Problem],
) -> str | None:
    """``server`` when it is a server of the cluster; else None, and the problem added."""
    if server == "":
        problems.append(_p(field_name, "required", required))
    elif server not in names:
        problems.append(
            _p(
                field_name,
                "unknown_server",
                f"{label} {server!r} is not a server of this cluster "
                f"(servers: {', '.join(names)}).",
            )
        )
    else:
        return server
    return None


def _resolve_tag(cluster: Cluster, tag: str, found: _Resolved) -> None:
    """The hierarchy of the Tag to Extend on the (resolved) template, into ``found``."""
    if tag == "":
        found.problems.append(_p("tag_to_extend", "required", "Choose the Tag to Extend."))
        return
    if found.template is None:
        return
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
        return
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


# -- the Pre-Extend page ----------------------------------------------------------------
def pre_extend_field_problems(cluster: Cluster, request: ExtendRequest) -> list[Problem]:
    """The problems of the Pre-Extend fields (in memory: no file system is probed)."""
    r = _resolve(cluster, request)
    problems = list(r.problems)
    h, template, target = r.hierarchy, r.template, r.target
    if target is not None:
        problems += _target_server_problems(cluster, h, template, target)
    problems += _switchback_problems(request, h)
    problems += _priority_field_problems(request, h, template)
    return problems


def _target_server_problems(
    cluster: Cluster, h: Hierarchy | None, template: str | None, target: str
) -> list[Problem]:
    server = cluster.server(target)
    if template is not None and target == template:
        return [
            _p(
                "target_server",
                "same_as_template",
                f"Target Server {target} is the Template Server; choose another server.",
            )
        ]
    if server is not None and not server.state.is_alive:
        return [
            _p(
                "target_server",
                "target_not_alive",
                f"Target Server {target} is {server.state.value}; start it or choose an "
                "alive server.",
            )
        ]
    if h is not None and target in h.servers:
        return [
            _p(
                "target_server",
                "already_extended",
                f"{h.root_tag} is already extended to {target} (priority "
                f"{h.priority_of(target)}); choose a server that does not have it.",
            )
        ]
    return []


def _switchback_problems(request: ExtendRequest, h: Hierarchy | None) -> list[Problem]:
    switchback = text(request.switchback_type).lower()
    if switchback not in {t.value for t in SwitchbackType}:
        return [
            _p(
                "switchback_type",
                "unknown_switchback",
                f"Switchback Type {request.switchback_type!r} is not one of intelligent, "
                "automatic.",
            )
        ]
    if switchback == SwitchbackType.AUTOMATIC.value and (h is None or h.depends_on_datakeeper()):
        return [
            _p(
                "switchback_type",
                "automatic_with_datakeeper",
                "Switchback Type automatic is not supported: this hierarchy contains a "
                "DataKeeper resource, and DataKeeper supports only intelligent switchback "
                "(an administrator switches back by hand). Choose intelligent.",
            )
        ]
    return []


def _priority_field_problems(
    request: ExtendRequest, h: Hierarchy | None, template: str | None
) -> list[Problem]:
    """The Template Priority's problems, then the Target Priority's."""
    initial = h is not None and len(h.equivalencies) == 1
    template_priority, found = _template_priority(request, h, template, initial)
    problems = list(found)
    target_priority, found = priority_problems(
        "target_priority", "Target Priority", request.target_priority
    )
    problems += found
    if h is not None and target_priority is not None:
        problems += _target_priority_conflicts(
            h, template, initial, template_priority, target_priority
        )
    return problems


def _template_priority(
    request: ExtendRequest, h: Hierarchy | None, template: str | None, initial: bool
) -> tuple[int | None, list[Problem]]:
    """The Template Priority the extend will set (as typed, else the current one on the
    initial extend), and the problems of what was typed."""
    if request.template_priority is not None and text(request.template_priority) != "":
        if h is not None and not initial:
            return None, [
                _p(
                    "template_priority",
                    "not_initial_extend",
                    f"Template Priority can be set only on the initial extend; {h.root_tag} is "
                    f"already on {', '.join(h.servers)}. Leave it out.",
                )
            ]
        return priority_problems(
            "template_priority", "Template Priority", request.template_priority
        )
    if initial and h is not None and template is not None:
        return h.priority_of(template), []
    return None, []


def _target_priority_conflicts(
    h: Hierarchy,
    template: str | None,
    initial: bool,
    template_priority: int | None,
    target_priority: int,
) -> list[Problem]:
    """A valid Target Priority that another server of ``h``, or the template, has."""
    owner = next(
        (
            e.server
            for e in h.equivalencies
            if e.priority == target_priority and e.server != template
        ),
        None,
    )
    if owner is not None:
        return [
            _p(
                "target_priority",
                "priority_in_use",
                f"Target Priority {target_priority} is already used by {owner} for "
                f"{h.root_tag}; choose an unused one (default "
                f"{default_target_priority(h)}).",
            )
        ]
    if template_priority is not None and target_priority == template_priority:
        return [
            _p(
                "target_priority",
                "same_as_template_priority",
                f"Target Priority {target_priority} equals the Template Priority; "
                "priorities must be unique.",
            )
        ]
    if not initial and template is not None and target_priority == h.priority_of(template):
        return [
            _p(
                "target_priority",
                "priority_in_use",
                f"Target Priority {target_priority} is already used by {template} for "
                f"{h.root_tag}; choose an unused one (default "
                f"{default_target_priority(h)}).",
            )
        ]
    return []


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
        if not path_problem(page.volume):
            problems += _disk_space_problems(facts, target, page)
    return problems + _target_address_problems(h, r.template, target, facts)


def _target_address_problems(
    h: Hierarchy, template: str, target: str, facts: Facts
) -> list[Problem]:
    """An IP address of the hierarchy may not be the target server's own address."""
    ips = [r for r in h.instances_on(template) if r.kind is ResourceKind.IP]
    if not ips:
        return []
    own = set()
    for address in facts.network_of(target).addresses:
        with contextlib.suppress(ValueError):
            own.add(ipaddress.ip_interface(address).ip)
    problems = []
    for r in ips:
        try:
            ip = ipaddress.ip_interface(r.setting("address")).ip
        except ValueError:
            continue
        if ip in own:
            problems.append(
                _p(
                    "target_server",
                    "address_of_target",
                    f"{r.tag} protects {ip}, which is {target}'s own address; choose "
                    "another target.",
                )
            )
    return problems


def _disk_space_problems(facts: Facts, target: str, page: DataKeeperPage) -> list[Problem]:
    """Room for the mirror of ``page`` on ``target``: free space, or the volume there."""
    volume = facts.path(target, page.volume)
    existing = volume.size or 0
    need = max(0, page.volume_size - existing)
    free = volume.free_bytes
    if free is not None and free < need:
        return [
            _p(
                "target_server",
                "no_disk_space",
                f"{target} has {format_size(free)} free for {page.volume}, but the mirror "
                f"of {page.template_dk_tag} needs {format_size(page.volume_size)}; free "
                "space on it or choose another target.",
            )
        ]
    if volume.exists and existing < page.volume_size:
        return [
            _p(
                "target_server",
                "target_volume_too_small",
                f"{page.volume} on {target} is {format_size(existing)}, smaller than the "
                f"source ({format_size(page.volume_size)}).",
            )
        ]
    return []


# -- the Extend page of each DataKeeper resource -------------------------------------------
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
    new_tags: dict[str, int] = {}  # the tags this extend makes on the target, so far
    for rid in _dk_ids(h):
        if only is not None and rid != only:
            continue
        page = _dk_page(h, template, target or "", facts, rid)
        dk = request.datakeeper_for(rid) or page.defaults
        if page.filesystem_id is not None:
            problems += _mount_point_problems(rid, dk, target, protected)
            problems += _root_tag_problems(rid, dk, target, taken, new_tags)
        problems += _dk_tag_problems(rid, dk, target, taken, new_tags)
        if dk.bitmap_file is not None:
            for code, message in bitmaps.problems(facts, target or "", dk.bitmap_file):
                problems.append(Problem("bitmap_file", code, message, rid))
        if dk.asynchronous is not None and not isinstance(dk.asynchronous, bool):
            problems.append(
                Problem(
                    "asynchronous",
                    "not_a_mode",
                    f"Replication {dk.asynchronous!r} is not a mode: true (asynchronous), "
                    "false (synchronous), or none (the mirror's own mode).",
                    rid,
                )
            )
    return problems


def _mount_point_problems(
    rid: int, dk: DataKeeperExtend, target: str | None, protected: set[str]
) -> list[Problem]:
    mount = dk.mount_point
    if mount is None or text(mount) == "":
        return [
            Problem("mount_point", "required", "Mount Point is required (an absolute path).", rid)
        ]
    mount = text(mount)
    why = path_problem(mount)
    if why:
        return [Problem("mount_point", "bad_path", f"Mount Point {mount!r} {why}", rid)]
    if mount == "/":
        return [
            Problem(
                "mount_point",
                "root_mount_point",
                "Mount Point / is the root filesystem and cannot be protected; choose "
                "a folder such as /data.",
                rid,
            )
        ]
    if target and norm(mount) in {norm(m) for m in protected}:
        return [
            Problem(
                "mount_point",
                "mount_point_protected",
                f"Mount Point {mount} is already protected on {target}; choose "
                "another mount point.",
                rid,
            )
        ]
    return []


def _root_tag_problems(
    rid: int, dk: DataKeeperExtend, target: str | None, taken: set[str], new_tags: dict[str, int]
) -> list[Problem]:
    """The Root Tag's problems; a valid one joins ``new_tags``."""
    root_tag = dk.root_tag if dk.root_tag is not None else ""
    found = tag_problems("root_tag", "Root Tag", root_tag)
    problems = [Problem(p.field, p.code, p.message, rid) for p in found]
    if not found:
        if root_tag in taken:
            problems.append(
                Problem(
                    "root_tag",
                    "tag_in_use_on_target",
                    f"Root Tag {root_tag!r} is already used on {target}; choose a free tag.",
                    rid,
                )
            )
        new_tags[root_tag] = new_tags.get(root_tag, 0) + 1
    return problems


def _dk_tag_problems(
    rid: int, dk: DataKeeperExtend, target: str | None, taken: set[str], new_tags: dict[str, int]
) -> list[Problem]:
    """The DataKeeper Resource Tag's problems; a valid one joins ``new_tags``."""
    found = tag_problems("dk_tag", "DataKeeper Resource Tag", dk.dk_tag)
    problems = [Problem(p.field, p.code, p.message, rid) for p in found]
    if not found:
        if dk.dk_tag in taken:
            problems.append(
                Problem(
                    "dk_tag",
                    "tag_in_use_on_target",
                    f"DataKeeper Resource Tag {dk.dk_tag!r} is already used on {target}; "
                    "choose a free tag.",
                    rid,
                )
            )
        elif new_tags.get(dk.dk_tag):
            problems.append(
                Problem(
                    "dk_tag",
                    "tag_repeated",
                    f"DataKeeper Resource Tag {dk.dk_tag!r} is also the Root Tag; tags must "
                    "differ.",
                    rid,
                )
            )
        new_tags[dk.dk_tag] = new_tags.get(dk.dk_tag, 0) + 1
    return problems
