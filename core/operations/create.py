"""Create Resource Hierarchy (DataKeeper) through a backend."""

from __future__ import annotations

from dataclasses import dataclass

from core import commands
from core.backend import Backend, StepCallback
from core.checks import Problem
from core.events import EventHub
from core.facts import Facts, gather
from core.model import Cluster
from core.permissions import Op
from core.plan import Plan
from core.rules import create as rules
from core.rules.create import CreateDefaults, CreateRequest
from core.session import Session

__all__ = ["CreateDefaults", "CreateRequest", "CreateResult", "create", "defaults", "plan"]


@dataclass(frozen=True)
class CreateResult:
    hierarchy_id: int
    root_tag: str
    server: str
    message: str


def defaults(
    backend: Backend,
    cluster: Cluster | None = None,
    *,
    server: str | None = None,
    hierarchy_type: str = rules.NEW_FS,
) -> CreateDefaults:
    cluster = cluster or backend.snapshot()
    facts = gather(backend, rules.defaults_needs(cluster, server))
    return rules.defaults(cluster, facts, server=server, hierarchy_type=hierarchy_type)


def facts_for(
    backend: Backend, cluster: Cluster, request: CreateRequest, known: Facts | None = None
) -> Facts:
    return gather(backend, rules.needs(cluster, request), known)


def check(
    backend: Backend, request: CreateRequest, cluster: Cluster | None = None
) -> list[Problem]:
    cluster = cluster or backend.snapshot()
    return rules.check_request(cluster, facts_for(backend, cluster, request), request)


def plan(backend: Backend, request: CreateRequest, cluster: Cluster | None = None) -> Plan:
    cluster = cluster or backend.snapshot()
    return plan_of(cluster, facts_for(backend, cluster, request), request)


def plan_of(cluster: Cluster, facts: Facts, request: CreateRequest) -> Plan:
    steps = rules.plan_steps(cluster, facts, request)
    root = rules.root_tag(request)
    return Plan(
        op=Op.CREATE_HIERARCHY,
        name=f"create {root} on {request.server}",
        command=commands.create(request),
        steps=steps,
        done=rules.done_message(request),
        server=request.server,
        intro=f"Creating {root} on {request.server} ({{total}} steps)",
        committed=f"{root} was created on {request.server}",
    )


def execute(
    backend: Backend,
    create_plan: Plan,
    session: Session,
    *,
    hub: EventHub | None = None,
    on_step: StepCallback | None = None,
) -> CreateResult:
    backend.authorize(session, Op.CREATE_HIERARCHY, create_plan.name, create_plan.command)
    result = backend.apply(create_plan, session, hub=hub, on_step=on_step)
    assert result.hierarchy_id is not None
    root = create_plan.name.removeprefix("create ").rsplit(" on ", 1)[0]
    return CreateResult(result.hierarchy_id, root, create_plan.server, result.message)


def create(
    backend: Backend, request: CreateRequest, session: Session, *, hub: EventHub | None = None
) -> CreateResult:
    backend.authorize(
        session,
        Op.CREATE_HIERARCHY,
        f"create {rules.root_tag(request)} on {request.server}",
        commands.create(request),
    )
    return execute(backend, plan(backend, request), session, hub=hub)
