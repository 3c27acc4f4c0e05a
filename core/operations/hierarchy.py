"""Unextend and Delete Resource Hierarchy through a backend."""

from __future__ import annotations

from core import commands
from core.backend import Backend, StepCallback
from core.events import EventHub
from core.model import Cluster
from core.permissions import Op
from core.plan import Plan
from core.rules import hierarchy as rules
from core.rules.hierarchy import DeleteRequest, UnextendRequest
from core.session import Session

__all__ = ["DeleteRequest", "UnextendRequest", "delete", "execute", "plan_delete", "plan_unextend"]


def plan_unextend(cluster: Cluster, request: UnextendRequest) -> Plan:
    h, steps = rules.unextend_steps(cluster, request)
    server = request.server.strip()
    return Plan(
        op=Op.UNEXTEND_HIERARCHY,
        name=f"unextend {h.root_tag} from {server}",
        command=commands.unextend(request.tag, server),
        steps=steps,
        hierarchy_id=h.id,
        version=h.version,
        done=f"Unextend done: {h.root_tag} from {server}.",
        server=server,
        intro=f"Unextend: {h.root_tag} from {server} ({{total}} steps)",
        committed=f"{h.root_tag} was unextended from {server}",
    )


def plan_delete(cluster: Cluster, request: DeleteRequest) -> Plan:
    h, steps = rules.delete_steps(cluster, request)
    return Plan(
        op=Op.DELETE_HIERARCHY,
        name=f"delete {h.root_tag}",
        command=commands.delete(request.tag),
        steps=steps,
        hierarchy_id=h.id,
        version=h.version,
        done=f"Delete done: {h.root_tag}.",
        intro=f"Delete: {h.root_tag} ({{total}} steps)",
        committed=f"{h.root_tag} was deleted",
    )


def execute(
    backend: Backend,
    plan: Plan,
    session: Session,
    *,
    hub: EventHub | None = None,
    on_step: StepCallback | None = None,
) -> str:
    """Run an unextend or delete plan; returns the result message."""
    backend.authorize(session, plan.op, plan.name, plan.command)
    return backend.apply(plan, session, hub=hub, on_step=on_step).message


def unextend(
    backend: Backend, request: UnextendRequest, session: Session, *, hub: EventHub | None = None
) -> str:
    backend.authorize(
        session,
        Op.UNEXTEND_HIERARCHY,
        f"unextend {request.tag} from {request.server}",
        commands.unextend(request.tag, request.server),
    )
    return execute(backend, plan_unextend(backend.snapshot(), request), session, hub=hub)


def delete(
    backend: Backend, request: DeleteRequest, session: Session, *, hub: EventHub | None = None
) -> str:
    backend.authorize(
        session, Op.DELETE_HIERARCHY, f"delete {request.tag}", commands.delete(request.tag)
    )
    return execute(backend, plan_delete(backend.snapshot(), request), session, hub=hub)
