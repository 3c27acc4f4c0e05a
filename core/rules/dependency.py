"""Create Dependency and Delete Dependency (pure): LifeKeeper's ``dep_create`` and
``dep_remove``.

A dependency makes a *parent* resource depend on a *child*: the child comes in service
first and goes out of service last. Parent and child are chosen from the resources of one
server; the dependency is made on every server where both are defined. The child's
hierarchy then joins the parent's (the parent's priorities and switchback hold for the
whole); deleting the dependency makes the child, and what it depends on, a hierarchy of
their own again, on the same servers with the same priorities.

Refused, each with the reason and the field it belongs to:

- a cycle: a resource depending on itself, or on a resource that depends on it;
- **(ours)** a child that already has a parent: a resource has one parent in LK Console
  (delete that dependency first);
- **(ours)** hierarchies not defined on the same servers (extend or unextend one first),
  so that the dependency exists on every server of the hierarchy;
- a child whose hierarchy is in service on another server than the one the dependency
  is made on, while the parent is not in service;
- a parent and a child in service on different servers;
- a parent in service whose child is not (it would run without what it depends on);
- an automatic-switchback resource put into a DataKeeper hierarchy (DataKeeper supports
  only intelligent switchback, and so does every resource of its hierarchy).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core.checks import Problem
from core.errors import CheckFailed
from core.model import Cluster, Hierarchy, Resource, SwitchbackType
from core.plan import CreateDependency, DeleteDependency
from core.rules.paths import text

LABELS = {"server": "Server", "parent": "Parent Resource Tag", "child": "Child Resource Tag"}


@dataclass(frozen=True)
class DependencyRequest:
    """What Create Dependency / Delete Dependency and ``lkctl dependency`` ask for."""

    server: str
    parent: str
    child: str

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Found:
    """The request's resources as the snapshot has them."""

    server: str
    parent: Resource
    child: Resource
    parent_h: Hierarchy
    child_h: Hierarchy


def default_server(cluster: Cluster, tag: str | None) -> str:
    """Where a dependency on ``tag`` is made by default: where its hierarchy is in
    service, else its best-priority server (else the first server)."""
    inst = cluster.find_tag(text(tag)) if tag else None
    h = cluster.hierarchy(inst.hierarchy_id) if inst is not None else None
    if h is not None:
        return h.home_server
    return cluster.servers[0].name if cluster.servers else ""


def tags_on(cluster: Cluster, server: str) -> tuple[str, ...]:
    """The resources a parent or a child can be chosen from on ``server``."""
    return tuple(r.tag for r in cluster.instances_on(server))


def children_of(cluster: Cluster, server: str, parent: str) -> tuple[str, ...]:
    """The resources ``parent`` depends on directly on ``server`` (Delete Dependency)."""
    inst = cluster.find_tag(text(parent), server)
    h = cluster.hierarchy(inst.hierarchy_id) if inst is not None else None
    if inst is None or h is None:
        return ()
    return tuple(c.tag for rid in h.children(inst.resource_id) if (c := h.instance(rid, server)))


def _find(cluster: Cluster, request: DependencyRequest) -> tuple[Found | None, list[Problem]]:
    server = text(request.server)
    names = [s.name for s in cluster.servers]
    if server not in names:
        return None, [
            Problem(
                "server",
                "unknown_server",
                f"Server {server!r} is not a server of this cluster ({', '.join(names)}).",
            )
        ]
    problems: list[Problem] = []
    found: dict[str, tuple[Resource, Hierarchy]] = {}
    for name in ("parent", "child"):
        tag = text(getattr(request, name))
        label = LABELS[name]
        inst = cluster.find_tag(tag, server) if tag else None
        h = cluster.hierarchy(inst.hierarchy_id) if inst is not None else None
        if not tag:
            problems.append(Problem(name, "tag_empty", f"{label} is required."))
        elif inst is None or h is None:
            problems.append(
                Problem(
                    name,
                    "unknown_tag",
                    f"{label} {tag!r}: there is no such resource on {server}; choose one of "
                    f"the resources of {server}.",
                )
            )
        else:
            found[name] = (inst, h)
    if problems:
        return None, problems
    (parent, parent_h), (child, child_h) = found["parent"], found["child"]
    return Found(server, parent, child, parent_h, child_h), []


def _chain(h: Hierarchy, top: int, bottom: int) -> list[str]:
    """The tags from ``top`` down to ``bottom`` (which depends, through them, on ...)."""
    path = [bottom]
    while path[-1] != top:
        up = h.parent(path[-1])
        if up is None:
            return []
        path.append(up)
    return [h.tag_of(rid) for rid in reversed(path)]


def _structure_problems(f: Found) -> list[Problem]:
    """Cycles, a second parent, and hierarchies on different servers."""
    p, c = f.parent, f.child
    if p.resource_id == c.resource_id:
        return [
            Problem(
                "child",
                "cycle",
                f"{p.tag} cannot depend on itself: choose another child resource.",
            )
        ]
    if f.parent_h.id == f.child_h.id:
        chain = _chain(f.parent_h, c.resource_id, p.resource_id)
        if chain:
            return [
                Problem(
                    "child",
                    "cycle",
                    f"{p.tag} → {c.tag} would make a cycle: {c.tag} already depends on "
                    f"{p.tag} ({' → '.join(chain)}).",
                )
            ]
        if f.parent_h.parent(c.resource_id) == p.resource_id:
            return [Problem("child", "already_dependent", f"{p.tag} already depends on {c.tag}.")]
    above = f.child_h.parent(c.resource_id)
    if above is not None:
        return [
            Problem(
                "child",
                "child_has_parent",
                f"{c.tag} already has a parent, {f.child_h.tag_of(above)} (hierarchy "
                f"{f.child_h.root_tag}): a resource has one parent here; delete that "
                "dependency first, or choose the root of a hierarchy as the child.",
            )
        ]
    if set(f.parent_h.servers) != set(f.child_h.servers):
        return [
            Problem(
                "child",
                "servers_differ",
                f"{f.parent_h.root_tag} is defined on {', '.join(sorted(f.parent_h.servers))} "
                f"but {f.child_h.root_tag} on {', '.join(sorted(f.child_h.servers))}: extend "
                "or unextend one of them first, so that the dependency is made on every "
                "server of the hierarchy.",
            )
        ]
    return []


def _where_in_service(h: Hierarchy, resource_id: int) -> str | None:
    return next(
        (r.server for r in h.resources if r.resource_id == resource_id and r.state.in_service),
        None,
    )


def _service_problems(f: Found) -> list[Problem]:
    """Parent and child must be in service together, on one server (or not at all)."""
    p, c = f.parent, f.child
    parent_on = _where_in_service(f.parent_h, p.resource_id)
    child_on = _where_in_service(f.child_h, c.resource_id)
    if parent_on and child_on and parent_on != child_on:
        return [
            Problem(
                "child",
                "in_service_apart",
                f"{p.tag} is in service on {parent_on} but {c.tag} on {child_on}: switch one "
                "of them over so that both are in service on the same server first.",
            )
        ]
    if child_on and not parent_on and child_on != f.server:
        return [
            Problem(
                "child",
                "child_in_service_elsewhere",
                f"{c.tag} is in service on {child_on}, not on {f.server} where the dependency "
                f"is made: make it from {child_on}, or switch {f.child_h.root_tag} over to "
                f"{f.server} first.",
            )
        ]
    if parent_on and not child_on:
        return [
            Problem(
                "child",
                "child_not_in_service",
                f"{p.tag} is in service on {parent_on} but {c.tag} is not: bring "
                f"{f.child_h.root_tag} in service on {parent_on} first (a parent in service "
                "needs what it depends on in service).",
            )
        ]
    return []


def _switchback_problems(f: Found) -> list[Problem]:
    """No automatic switchback in a hierarchy with a DataKeeper resource."""
    if not (f.parent_h.depends_on_datakeeper() or f.child_h.depends_on_datakeeper()):
        return []
    for name, h in (("parent", f.parent_h), ("child", f.child_h)):
        if h.switchback is SwitchbackType.AUTOMATIC:
            dk = f.child_h if f.child_h.depends_on_datakeeper() else f.parent_h
            return [
                Problem(
                    name,
                    "automatic_with_datakeeper",
                    f"{h.root_tag} has automatic switchback: this dependency would put it in "
                    f"the DataKeeper hierarchy {dk.root_tag}, and DataKeeper supports only "
                    "intelligent switchback (so does every resource of its hierarchy). Set "
                    f"the switchback of {h.root_tag} to intelligent first.",
                )
            ]
    return []


def check_create(cluster: Cluster, request: DependencyRequest) -> list[Problem]:
    found, problems = _find(cluster, request)
    if found is None:
        return problems
    for rule in (_structure_problems, _service_problems, _switchback_problems):
        problems = rule(found)
        if problems:
            return problems
    return []


def create_step(cluster: Cluster, request: DependencyRequest) -> tuple[Found, CreateDependency]:
    """The step of a request that passes every check; CheckFailed otherwise."""
    problems = check_create(cluster, request)
    found, _ = _find(cluster, request)
    if problems or found is None:
        raise CheckFailed(problems)
    f = found
    return f, CreateDependency(
        parent_hierarchy_id=f.parent_h.id,
        parent_id=f.parent.resource_id,
        parent_tag=f.parent.tag,
        child_hierarchy_id=f.child_h.id,
        child_version=f.child_h.version,
        child_id=f.child.resource_id,
        child_tag=f.child.tag,
        servers=f.parent_h.servers,
    )


def create_notes(f: Found) -> tuple[str, ...]:
    """What the user should know once it is made (priorities that changed)."""
    mine = dict((e.server, e.priority) for e in f.parent_h.equivalencies)
    theirs = dict((e.server, e.priority) for e in f.child_h.equivalencies)
    if f.parent_h.id == f.child_h.id or mine == theirs:
        return ()
    shown = ", ".join(f"{s}={p}" for s, p in sorted(mine.items(), key=lambda x: x[1]))
    return (
        f"{f.child_h.root_tag} now follows the priorities of {f.parent_h.root_tag} ({shown}) "
        f"and its switchback ({f.parent_h.switchback.value}).",
    )


def check_delete(cluster: Cluster, request: DependencyRequest) -> list[Problem]:
    found, problems = _find(cluster, request)
    if found is None:
        return problems
    p, c = found.parent, found.child
    if found.parent_h.id != found.child_h.id or found.parent_h.parent(c.resource_id) != (
        p.resource_id
    ):
        direct = children_of(cluster, found.server, p.tag)
        choose = f" (it depends on {', '.join(direct)})" if direct else " (it depends on nothing)"
        return [
            Problem(
                "child",
                "no_dependency",
                f"{p.tag} does not depend on {c.tag} on {found.server}{choose}.",
            )
        ]
    return []


def delete_step(cluster: Cluster, request: DependencyRequest) -> tuple[Found, DeleteDependency]:
    problems = check_delete(cluster, request)
    found, _ = _find(cluster, request)
    if problems or found is None:
        raise CheckFailed(problems)
    f = found
    return f, DeleteDependency(
        hierarchy_id=f.parent_h.id,
        parent_id=f.parent.resource_id,
        parent_tag=f.parent.tag,
        child_id=f.child.resource_id,
        child_tag=f.child.tag,
        servers=f.parent_h.servers,
    )
