"""Cluster snapshots for model tests: the lab's seed hierarchy through its life.

Pure values (core.model), no store and no Qt: each function returns a new Cluster as
an operation would leave it.
"""

from __future__ import annotations

import dataclasses

from core.model import (
    Cluster,
    Equivalency,
    Hierarchy,
    MirrorState,
    MirrorTarget,
    Resource,
    ResourceKind,
    ResourceState,
)


def replace_hierarchy(cluster: Cluster, h: Hierarchy) -> Cluster:
    others = tuple(x for x in cluster.hierarchies if x.id != h.id)
    return dataclasses.replace(cluster, hierarchies=tuple(sorted((*others, h), key=lambda x: x.id)))


def with_states(cluster: Cluster, changes: dict[tuple[str, str], ResourceState]) -> Cluster:
    """The same cluster with the state of (tag, server) instances changed."""
    hierarchies = []
    for h in cluster.hierarchies:
        resources = tuple(
            dataclasses.replace(r, state=changes.get((r.tag, r.server), r.state))
            for r in h.resources
        )
        hierarchies.append(dataclasses.replace(h, resources=resources))
    return dataclasses.replace(cluster, hierarchies=tuple(hierarchies))


def created(cluster: Cluster, root_tag: str = "/web", dk_tag: str = "datarep-web") -> Cluster:
    """A second DataKeeper hierarchy, created in service on lab1."""
    seed = cluster.hierarchies[0]
    hid = max(h.id for h in cluster.hierarchies) + 1
    base = max(r.resource_id for h in cluster.hierarchies for r in h.resources)
    fs_id, dk_id = base + 1, base + 2
    fs = Resource(
        fs_id, hid, ResourceKind.FILESYSTEM, "lab1", root_tag, ResourceState.ISP, root_tag
    )
    dk = Resource(
        dk_id,
        hid,
        ResourceKind.DATAKEEPER,
        "lab1",
        dk_tag,
        ResourceState.ISP,
        volume=f"/disks/{dk_tag}.img",
        bitmap_file=f"/opt/LifeKeeper/bitmap_{dk_tag}",
    )
    mirror = dataclasses.replace(seed.mirrors[0], resource_id=dk_id, targets=())
    h = dataclasses.replace(
        seed,
        id=hid,
        version=1,
        root_id=fs_id,
        resources=(fs, dk),
        dependencies=(dataclasses.replace(seed.dependencies[0], parent_id=fs_id, child_id=dk_id),),
        equivalencies=(Equivalency("lab1", 1),),
        mirrors=(mirror,),
    )
    return replace_hierarchy(cluster, h)


def extended(
    cluster: Cluster,
    server: str = "lab2",
    state: MirrorState = MirrorState.RESYNCING,
    done: int = 0,
    rate: float = 180e6,
    eta: float | None = 120.0,
    hierarchy_index: int = 0,
) -> Cluster:
    """A hierarchy extended to ``server`` (Standby), its mirror target in ``state``."""
    h = cluster.hierarchies[hierarchy_index]
    home = h.home_server
    standby = tuple(
        dataclasses.replace(r, server=server, state=ResourceState.OSU)
        for r in h.resources
        if r.server == home
    )
    mirror = h.mirrors[0]
    target = MirrorTarget(
        server, state, bytes_done=done, bytes_total=mirror.volume_size, rate=rate, eta=eta
    )
    others = tuple(t for t in mirror.targets if t.server != server)
    mirror = dataclasses.replace(mirror, targets=(*others, target))
    priority = max(e.priority for e in h.equivalencies) // 10 * 10 + 10
    new = dataclasses.replace(
        h,
        resources=tuple(r for r in h.resources if r.server != server) + standby,
        mirrors=(mirror,),
        equivalencies=(
            *(e for e in h.equivalencies if e.server != server),
            Equivalency(server, priority),
        ),
        version=h.version + 1,
    )
    return replace_hierarchy(cluster, new)


def progressed(cluster: Cluster, server: str, done: int, hierarchy_index: int = 0) -> Cluster:
    h = cluster.hierarchies[hierarchy_index]
    mirror = h.mirrors[0]
    targets = tuple(
        dataclasses.replace(t, bytes_done=done, state=MirrorState.RESYNCING)
        if t.server == server
        else t
        for t in mirror.targets
    )
    return replace_hierarchy(
        cluster, dataclasses.replace(h, mirrors=(dataclasses.replace(mirror, targets=targets),))
    )


def in_sync(cluster: Cluster, server: str, hierarchy_index: int = 0) -> Cluster:
    h = cluster.hierarchies[hierarchy_index]
    mirror = h.mirrors[0]
    targets = tuple(
        MirrorTarget(server, MirrorState.TARGET, bytes_done=mirror.volume_size)
        if t.server == server
        else t
        for t in mirror.targets
    )
    return replace_hierarchy(
        cluster, dataclasses.replace(h, mirrors=(dataclasses.replace(mirror, targets=targets),))
    )


def switched_over(cluster: Cluster, to: str, hierarchy_index: int = 0) -> Cluster:
    """The hierarchy in service on ``to``; the previous source becomes a Target."""
    h = cluster.hierarchies[hierarchy_index]
    old = h.in_service_server
    assert old is not None and old != to
    resources = tuple(
        dataclasses.replace(
            r,
            state=ResourceState.ISP
            if r.server == to
            else (ResourceState.OSU if r.server == old else r.state),
        )
        for r in h.resources
    )
    mirror = h.mirrors[0]
    targets = (
        *(t for t in mirror.targets if t.server != to),
        MirrorTarget(old, MirrorState.TARGET, bytes_done=mirror.volume_size),
    )
    mirror = dataclasses.replace(mirror, source=to, targets=targets)
    new = dataclasses.replace(h, resources=resources, mirrors=(mirror,), version=h.version + 1)
    return replace_hierarchy(cluster, new)


def unextended(cluster: Cluster, server: str, hierarchy_index: int = 0) -> Cluster:
    h = cluster.hierarchies[hierarchy_index]
    mirror = h.mirrors[0]
    mirror = dataclasses.replace(
        mirror, targets=tuple(t for t in mirror.targets if t.server != server)
    )
    new = dataclasses.replace(
        h,
        resources=tuple(r for r in h.resources if r.server != server),
        equivalencies=tuple(e for e in h.equivalencies if e.server != server),
        mirrors=(mirror,),
        version=h.version + 1,
    )
    return replace_hierarchy(cluster, new)


def deleted(cluster: Cluster, hierarchy_index: int = 0) -> Cluster:
    gone = cluster.hierarchies[hierarchy_index].id
    return dataclasses.replace(
        cluster, hierarchies=tuple(h for h in cluster.hierarchies if h.id != gone)
    )


def part(size: int, percent: int) -> int:
    """The bytes of ``percent`` % of ``size``, rounded up (so it shows as that percent)."""
    return -(-size * percent // 100)
