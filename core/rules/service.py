"""In Service, Out of Service, Switchover, Force Online: the rules and the steps (pure).

DOMAIN.md, "Other operations": a hierarchy comes in service children first and goes out
of service parents first. A switchover (or failover) to a server whose mirror is not
"Target" is refused: while a mirror resyncs, neither the DataKeeper resource nor
anything that depends on it may move there. After a switchover the old source becomes a
target and resyncs only what changed; the new source is "Source".
"""

from __future__ import annotations

from core.checks import Problem
from core.errors import CheckFailed
from core.model import Cluster, Hierarchy, MirrorState, ResourceState
from core.plan import BringInService, MakeSource, Step, TakeOutOfService

TARGET_DOWN = "target server {server} is down"
WAITING = "the previous source {server} is down: this copy may be stale"


def hierarchy(cluster: Cluster, tag: str) -> Hierarchy:
    inst = cluster.find_tag((tag or "").strip())
    if inst is None:
        raise CheckFailed([Problem("tag", "unknown_tag", f"There is no resource tagged {tag!r}.")])
    h = cluster.hierarchy(inst.hierarchy_id)
    assert h is not None
    return h


def server(cluster: Cluster, name: str, field_name: str = "server") -> str:
    names = [s.name for s in cluster.servers]
    if name not in names:
        raise CheckFailed(
            [
                Problem(
                    field_name,
                    "unknown_server",
                    f"Server {name!r} is not a server of this cluster ({', '.join(names)}).",
                )
            ]
        )
    return name


def ancestors(h: Hierarchy, rid: int) -> list[int]:
    found = []
    parent = h.parent(rid)
    while parent is not None:
        found.append(parent)
        parent = h.parent(parent)
    return found


def not_target_problems(h: Hierarchy, server: str, field_name: str = "server") -> list[Problem]:
    """Why ``server`` cannot take ``h`` over: a mirror there that is not "Target"."""
    problems = []
    for m in h.mirrors:
        if m.source == server:
            continue
        t = m.target(server)
        if t is None or t.state is MirrorState.TARGET:
            continue
        tag = h.tag_of(m.resource_id)
        state = f"Resyncing ({t.percent} %)" if t.state is MirrorState.RESYNCING else t.state.label
        dependants = [h.tag_of(r) for r in ancestors(h, m.resource_id)]
        verb = "depends" if len(dependants) == 1 else "depend"
        also = f" (nor {', '.join(dependants)}, which {verb} on it)" if dependants else ""
        problems.append(
            Problem(
                field_name,
                "mirror_not_target",
                f"{tag} on {server} is {state}: its data may not match the source, so "
                f"{tag}{also} cannot be brought in service there until the mirror is Target.",
            )
        )
    return problems


def takeover_problems(
    cluster: Cluster, h: Hierarchy, server: str, field_name: str
) -> list[Problem]:
    if server not in h.servers:
        return [
            Problem(
                field_name,
                "not_extended",
                f"{h.root_tag} is not defined on {server}; extend it first.",
            )
        ]
    problems = []
    s = cluster.server(server)
    if s is not None and not s.state.is_alive:
        problems.append(
            Problem(field_name, "server_down", f"{server} is {s.state.value}; start it first.")
        )
    return problems + not_target_problems(h, server, field_name)


# -- the steps --------------------------------------------------------------------------------
def take_out(
    h: Hierarchy, server: str, state: ResourceState = ResourceState.OSU
) -> TakeOutOfService:
    """Parents first (the root first)."""
    order = tuple(h.tag_of(r) for r in h.resource_ids() if h.instance(r, server) is not None)
    return TakeOutOfService(h.id, h.root_tag, server, order, state)


def bring_in(h: Hierarchy, server: str) -> BringInService:
    """Children first."""
    order = tuple(h.tag_of(r) for r in reversed(h.resource_ids()))
    return BringInService(h.id, h.root_tag, server, order)


def make_source(
    h: Hierarchy, server: str, *, old_alive: bool = True, full_resync: bool = False
) -> MakeSource | None:
    moving = tuple((h.tag_of(m.resource_id), m.source) for m in h.mirrors if m.source != server)
    if not moving:
        return None
    return MakeSource(h.id, server, moving, old_alive, full_resync)


def switchover_steps(cluster: Cluster, tag: str, to: str) -> tuple[Hierarchy, tuple[Step, ...]]:
    h = hierarchy(cluster, tag)
    to = server(cluster, to, "to")
    problems = takeover_problems(cluster, h, to, "to")
    current = h.in_service_server
    if current == to:
        problems.append(
            Problem("to", "already_there", f"{h.root_tag} is already in service on {to}.")
        )
    if problems:
        raise CheckFailed(problems)
    steps: list[Step] = []
    if current is not None:
        steps.append(take_out(h, current))
    source = make_source(h, to)
    if source is not None:
        steps.append(source)
    steps.append(bring_in(h, to))
    return h, tuple(steps)


def in_service_steps(
    cluster: Cluster, tag: str, on: str
) -> tuple[Hierarchy, tuple[Step, ...], bool]:
    """The steps, and whether it is a switchover (in service elsewhere now)."""
    h = hierarchy(cluster, tag)
    on = server(cluster, on)
    current = h.in_service_server
    if current == on:
        raise CheckFailed(
            [
                Problem(
                    "server", "already_in_service", f"{h.root_tag} is already in service on {on}."
                )
            ]
        )
    if current is not None:
        h, steps = switchover_steps(cluster, tag, on)
        return h, steps, True
    problems = takeover_problems(cluster, h, on, "server")
    if problems:
        raise CheckFailed(problems)
    source = make_source(h, on)
    return h, (*([source] if source is not None else []), bring_in(h, on)), False


def out_of_service_steps(cluster: Cluster, tag: str) -> tuple[Hierarchy, tuple[Step, ...]]:
    h = hierarchy(cluster, tag)
    current = h.in_service_server
    if current is None:
        raise CheckFailed(
            [Problem("tag", "not_in_service", f"{h.root_tag} is not in service anywhere.")]
        )
    return h, (take_out(h, current),)


def force_online_steps(cluster: Cluster, tag: str, on: str) -> tuple[Hierarchy, tuple[Step, ...]]:
    """Bring a copy that waits for the previous source online anyway (it may be stale):
    every other copy is then resynced in full from it."""
    h = hierarchy(cluster, tag)
    on = server(cluster, on)
    waiting = [
        m
        for m in h.mirrors
        if (t := m.target(on)) is not None and t.state is MirrorState.WAIT_FOR_PREVIOUS_SOURCE
    ]
    if not waiting:
        raise CheckFailed(
            [
                Problem(
                    "server",
                    "not_waiting",
                    f"No mirror of {h.root_tag} on {on} waits for the previous source; "
                    "Force Online is only for such a copy.",
                )
            ]
        )
    s = cluster.server(on)
    if s is None or not s.state.is_alive:
        raise CheckFailed([Problem("server", "server_down", f"{on} is not running.")])
    source = make_source(h, on, old_alive=False, full_resync=True)
    return h, (*([source] if source is not None else []), bring_in(h, on))


def force_online_warning(h: Hierarchy, on: str) -> str:
    old = sorted({m.source for m in h.mirrors})
    return (
        f"Forced online on {on}: data written on {', '.join(old)} after this copy was last "
        "in sync is lost; the other copies will be fully resynced from it."
    )
