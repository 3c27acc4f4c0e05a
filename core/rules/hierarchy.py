"""Unextend and Delete Resource Hierarchy: the rules and the steps (pure).

- **Unextend** removes a hierarchy from one server that is not the one where it is in
  service: its resources, its priority, its mirror target (the resync to it is stopped)
  and its bitmap file. The data volume on that server is kept.
- **Delete** removes a hierarchy from every server. No volume is ever deleted.

The bitmap files go after the commit (a deleted file cannot be undone): a crash before
that leaves only an unused file, which a later extend resets.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.checks import Problem
from core.errors import CheckFailed
from core.model import Cluster, Hierarchy
from core.plan import (
    DeleteHierarchy,
    RemoveBitmapFile,
    RemoveMirrorTarget,
    RemovePriority,
    RemoveResources,
    Step,
    StopMirrors,
)


@dataclass(frozen=True)
class UnextendRequest:
    tag: str  # any tag of the hierarchy, on any server
    server: str  # the server to remove it from


@dataclass(frozen=True)
class DeleteRequest:
    tag: str


def hierarchy_of(
    cluster: Cluster, tag: str, field_name: str = "tag"
) -> tuple[Hierarchy | None, list[Problem]]:
    text = (tag or "").strip()
    if not text:
        return None, [Problem(field_name, "required", "Give the tag of the hierarchy.")]
    inst = cluster.find_tag(text)
    if inst is None:
        return None, [Problem(field_name, "unknown_tag", f"There is no resource tagged {text!r}.")]
    return cluster.hierarchy(inst.hierarchy_id), []


def unextend_problems(cluster: Cluster, request: UnextendRequest) -> list[Problem]:
    h, problems = hierarchy_of(cluster, request.tag)
    server = (request.server or "").strip()
    names = [s.name for s in cluster.servers]
    if not server:
        problems.append(Problem("server", "required", "Choose the server to unextend from."))
    elif server not in names:
        problems.append(
            Problem(
                "server",
                "unknown_server",
                f"Server {server!r} is not a server of this cluster ({', '.join(names)}).",
            )
        )
    elif h is not None:
        if server not in h.servers:
            problems.append(
                Problem("server", "not_extended", f"{h.root_tag} is not defined on {server}.")
            )
        elif server == h.in_service_server:
            problems.append(
                Problem(
                    "server",
                    "in_service_here",
                    f"{h.root_tag} is in service on {server}: unextend removes a standby. "
                    "Switch it over to another server first, or delete the hierarchy.",
                )
            )
        elif len(h.servers) == 1:
            problems.append(
                Problem(
                    "server",
                    "last_server",
                    f"{server} is the only server of {h.root_tag}; use Delete Resource "
                    "Hierarchy to remove it.",
                )
            )
    return problems


def unextend_steps(
    cluster: Cluster, request: UnextendRequest
) -> tuple[Hierarchy, tuple[Step, ...]]:
    problems = unextend_problems(cluster, request)
    if problems:
        raise CheckFailed(problems)
    h, _ = hierarchy_of(cluster, request.tag)
    assert h is not None
    server = request.server.strip()
    steps: list[Step] = []
    stops = [(m.resource_id, server) for m in h.mirrors if m.target(server) is not None]
    if stops:
        tags = tuple(h.tag_of(rid) for rid, _server in stops)
        steps.append(StopMirrors(tuple(stops), tags))
    for m in h.mirrors:
        dk = h.instance(m.resource_id, server)
        source = h.instance(m.resource_id, m.source)
        if m.target(server) is not None:
            steps.append(
                RemoveMirrorTarget(
                    m.resource_id,
                    h.tag_of(m.resource_id),
                    m.source,
                    server,
                    source.bitmap_file if source is not None else None,
                )
            )
        if dk is not None and dk.bitmap_file:
            steps.append(RemoveBitmapFile(server, dk.bitmap_file, dk.volume))
    tags = tuple(r.tag for r in h.instances_on(server))
    steps.append(RemoveResources(h.id, server, tags))
    steps.append(RemovePriority(h.id, h.root_tag, server))
    return h, tuple(steps)


def delete_problems(cluster: Cluster, request: DeleteRequest) -> list[Problem]:
    _h, problems = hierarchy_of(cluster, request.tag)
    return problems


def delete_steps(cluster: Cluster, request: DeleteRequest) -> tuple[Hierarchy, tuple[Step, ...]]:
    problems = delete_problems(cluster, request)
    if problems:
        raise CheckFailed(problems)
    h, _ = hierarchy_of(cluster, request.tag)
    assert h is not None
    steps: list[Step] = []
    stops = tuple((m.resource_id, t.server) for m in h.mirrors for t in m.targets)
    if stops:
        steps.append(StopMirrors(stops, tuple(h.tag_of(m.resource_id) for m in h.mirrors)))
    for server in h.servers:
        for inst in h.instances_on(server):
            if inst.bitmap_file:
                steps.append(RemoveBitmapFile(server, inst.bitmap_file, inst.volume))
    steps.append(DeleteHierarchy(h.id, h.root_tag, h.servers))
    return h, tuple(steps)
