"""Extend Resource Hierarchy: the facts the rules need, and the steps of a request that
passes every check."""

from __future__ import annotations

import dataclasses

from core.errors import CheckFailed
from core.facts import Facts, Needs
from core.model import Cluster, Hierarchy, Resource, ResourceKind, ResourceState, SwitchbackType
from core.plan import (
    AddResource,
    ConfigureMirror,
    CreateDataKeeperTarget,
    SetPriorities,
    StartResync,
    Step,
)
from core.rules import bitmaps
from core.rules.extend.checks import check_request
from core.rules.extend.defaults import (
    _default_target,
    _dk_ids,
    _dk_page,
    _filesystem_on,
    _pick_hierarchy,
    _target_tag,
    _template_of,
)
from core.rules.extend.request import ExtendRequest, _p
from core.rules.paths import path_problem, text


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
    template = _template_of(cluster, h, template_server)
    target = target_server or _default_target(cluster, h, template)
    found = Needs()
    if target and any(r.kind is ResourceKind.IP for r in h.instances_on(template)):
        found |= Needs(networks=frozenset({target}))  # its interface there, its addresses
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
        if source.kind is ResourceKind.DATAKEEPER:
            steps += _datakeeper_steps(h, rid, source, target, full)
        else:
            steps.append(_add_resource_step(h, rid, source, target, full, facts))
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


def _datakeeper_steps(
    h: Hierarchy, rid: int, source: Resource, target: str, full: ExtendRequest
) -> tuple[Step, ...]:
    """The DataKeeper resource ``rid`` on the target, and its mirror configured to it."""
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
    return (
        CreateDataKeeperTarget(new, mirror.volume_size),
        ConfigureMirror(
            rid,
            dk.dk_tag,
            mirror.source,
            target,
            dk.bitmap_file,
            mirror_source.bitmap_file if mirror_source else None,
            mirror.volume_size,
            mirror.chunk_size,
            mirror.asynchronous if dk.asynchronous is None else bool(dk.asynchronous),
        ),
    )


def _add_resource_step(
    h: Hierarchy, rid: int, source: Resource, target: str, full: ExtendRequest, facts: Facts
) -> Step:
    """Any other resource on the target: its new tag, a filesystem's mount point, an IP
    address's interface there (the one the backend names for the target, else the
    template's); an application's commands and an address are the same everywhere."""
    new_tag, _read_only = _target_tag(h, rid, source.tag, full)
    mount = source.mount_point
    if source.kind is ResourceKind.FILESYSTEM:
        mount = next(
            (d.mount_point for d in full.datakeeper if _filesystem_on(h, d.resource_id) == rid),
            source.mount_point,
        )
    settings = source.settings
    if source.kind is ResourceKind.IP:
        nic = facts.network_of(target).interface or source.setting("interface")
        settings = tuple((k, nic if k == "interface" else v) for k, v in settings)
    new = dataclasses.replace(
        source,
        server=target,
        tag=new_tag,
        state=ResourceState.OSU,
        mount_point=mount,
        settings=settings,
    )
    return AddResource(new)


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
