"""In Service, Out of Service, Switchover and Force Online through a backend."""

from __future__ import annotations

from core import commands
from core.backend import Backend
from core.events import EventHub
from core.model import Cluster
from core.permissions import Op
from core.plan import Plan
from core.rules import service as rules
from core.session import Session

__all__ = [
    "force_online",
    "in_service",
    "out_of_service",
    "plan_in_service",
    "plan_out_of_service",
    "plan_switchover",
    "switchover",
]


def plan_switchover(cluster: Cluster, tag: str, to: str) -> Plan:
    """The plan of a switchover (CheckFailed naming the field when it cannot be done)."""
    h, steps = rules.switchover_steps(cluster, tag, to)
    return Plan(
        Op.SWITCHOVER,
        f"switchover {h.root_tag} to {to}",
        commands.switchover(tag, to),
        steps,
        h.id,
        h.version,
        server=to,
        committed=f"{h.root_tag} was switched over to {to}",
        after_failure="See lkctl mirror status; resume the mirrors once the cause is fixed.",
    )


def plan_in_service(cluster: Cluster, tag: str, server: str) -> Plan:
    """In Service on ``server``; a switchover when it is in service elsewhere now."""
    h, steps, is_switchover = rules.in_service_steps(cluster, tag, server)
    if is_switchover:
        return plan_switchover(cluster, tag, server)
    return Plan(
        Op.IN_SERVICE,
        f"in service {h.root_tag} on {server}",
        commands.in_service(tag, server),
        steps,
        h.id,
        h.version,
        server=server,
        committed=f"{h.root_tag} was brought in service on {server}",
    )


def plan_out_of_service(cluster: Cluster, tag: str) -> Plan:
    h, steps = rules.out_of_service_steps(cluster, tag)
    return Plan(
        Op.OUT_OF_SERVICE,
        f"out of service {h.root_tag} on {h.in_service_server}",
        commands.out_of_service(tag),
        steps,
        h.id,
        h.version,
        server=h.in_service_server or "",
    )


def switchover(
    backend: Backend, tag: str, to: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    command = commands.switchover(tag, to)
    backend.authorize(session, Op.SWITCHOVER, f"switchover {tag} to {to}", command)
    plan = plan_switchover(backend.snapshot(), tag, to)
    return list(backend.apply(plan, session, hub=hub).lines)


def in_service(
    backend: Backend, tag: str, server: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    command = commands.in_service(tag, server)
    backend.authorize(session, Op.IN_SERVICE, f"in service {tag} on {server}", command)
    plan = plan_in_service(backend.snapshot(), tag, server)
    if plan.op is Op.SWITCHOVER:
        return switchover(backend, tag, server, session, hub)
    return list(backend.apply(plan, session, hub=hub).lines)


def out_of_service(
    backend: Backend, tag: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    command = commands.out_of_service(tag)
    backend.authorize(session, Op.OUT_OF_SERVICE, f"out of service {tag}", command)
    plan = plan_out_of_service(backend.snapshot(), tag)
    return list(backend.apply(plan, session, hub=hub).lines)


def force_online(
    backend: Backend, tag: str, server: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    """Bring a copy that waits for the previous source online anyway (it may be stale)."""
    command = commands.force_online(tag, server)
    backend.authorize(session, Op.FORCE_ONLINE, f"force online {tag} on {server}", command)
    h, steps = rules.force_online_steps(backend.snapshot(), tag, server)
    plan = Plan(
        Op.FORCE_ONLINE,
        f"force online {h.root_tag} on {server}",
        command,
        steps,
        h.id,
        h.version,
        server=server,
        extra=(rules.force_online_warning(h, server),),
    )
    result = backend.apply(plan, session, hub=hub)
    return [*result.lines, *plan.extra]
