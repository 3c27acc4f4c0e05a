"""Plans for the Pacemaker backend, as the console's operations build them (the cluster
tests' shorthand): create an IP or app hierarchy, extend, switch over, delete."""

from __future__ import annotations

from core.backends.pacemaker import PacemakerBackend
from core.model import Hierarchy, ResourceKind, ResourceState, Role, SwitchbackType
from core.permissions import Op
from core.plan import (
    BringInService,
    CreateResource,
    DeleteHierarchy,
    Plan,
    SetPriorities,
    Step,
    TakeOutOfService,
)
from core.session import Session

ADMIN = Session("root", Role.ADMINISTRATOR)


def plan(op: Op, name: str, *steps: Step, h: Hierarchy | None = None) -> Plan:
    return Plan(
        op,
        name,
        f"lkctl {name}",
        steps,
        hierarchy_id=h.id if h else None,
        version=h.version if h else None,
    )


def ip(tag: str, address: str, server: str = "lab1", interface: str = "eth0") -> Plan:
    settings = (("address", f"{address}/24"), ("interface", interface))
    step = CreateResource("new", server, ResourceKind.IP, tag, settings, SwitchbackType.INTELLIGENT)
    return plan(Op.CREATE_HIERARCHY, f"create {tag}", step)


def app(tag: str, server: str = "lab1", start: str = "") -> Plan:
    marker = f"/data/{tag}.running"
    settings = (
        ("start", start or f"sh -c 'echo started > {marker}'"),
        ("stop", f"rm -f {marker}"),
        ("monitor", f"test -f {marker}"),
        ("restart", ""),
    )
    step = CreateResource(
        "new", server, ResourceKind.APP, tag, settings, SwitchbackType.INTELLIGENT
    )
    return plan(Op.CREATE_HIERARCHY, f"create {tag}", step)


def find(b: PacemakerBackend, tag: str) -> Hierarchy:
    cluster = b.snapshot()
    return next(h for h in cluster.hierarchies if h.root_tag == tag)


def states(h: Hierarchy) -> dict[str, ResourceState]:
    return {r.server: r.state for r in h.resources if r.resource_id == h.root_id}


def extend(b: PacemakerBackend, tag: str, *priorities: tuple[str, int]) -> None:
    h = find(b, tag)
    current = tuple((e.server, e.priority) for e in h.equivalencies)
    step = SetPriorities(h.id, h.root_tag, (*current, *priorities))
    b.apply(plan(Op.EXTEND_HIERARCHY, f"extend {tag}", step, h=h), ADMIN)


def switchover(b: PacemakerBackend, tag: str, to: str) -> None:
    h = find(b, tag)
    steps: list[Step] = []
    if h.in_service_server:
        steps.append(TakeOutOfService(h.id, tag, h.in_service_server, (tag,)))
    steps.append(BringInService(h.id, tag, to, (tag,)))
    b.apply(plan(Op.SWITCHOVER, f"switchover {tag} to {to}", *steps, h=h), ADMIN)


def delete(b: PacemakerBackend, h: Hierarchy) -> None:
    step = DeleteHierarchy(h.id, h.root_tag, h.servers)
    b.apply(plan(Op.DELETE_HIERARCHY, f"delete {h.root_tag}", step, h=h), ADMIN)
