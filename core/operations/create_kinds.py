"""Create Resource Hierarchy for an IP address or a Generic Application, through a backend."""

from __future__ import annotations

from core import commands
from core.backend import Backend
from core.checks import Problem
from core.facts import Facts, gather
from core.model import Cluster
from core.operations.create import CreateResult, execute
from core.permissions import Op
from core.plan import Plan
from core.rules import kinds as rules
from core.rules.kinds import ResourceDefaults, ResourceRequest
from core.rules.paths import text
from core.session import Session

__all__ = [
    "ResourceDefaults",
    "ResourceRequest",
    "check",
    "create",
    "defaults",
    "facts_for",
    "plan",
    "plan_of",
]


def facts_for(backend: Backend, cluster: Cluster, known: Facts | None = None) -> Facts:
    return gather(backend, rules.needs(cluster), known)


def defaults(
    backend: Backend, kind: str, cluster: Cluster | None = None, *, server: str | None = None
) -> ResourceDefaults:
    cluster = cluster or backend.snapshot()
    return rules.defaults(cluster, facts_for(backend, cluster), kind, server)


def check(
    backend: Backend, request: ResourceRequest, cluster: Cluster | None = None
) -> list[Problem]:
    cluster = cluster or backend.snapshot()
    return rules.check_request(cluster, facts_for(backend, cluster), request)


def plan(backend: Backend, request: ResourceRequest, cluster: Cluster | None = None) -> Plan:
    cluster = cluster or backend.snapshot()
    return plan_of(cluster, facts_for(backend, cluster), request)


def plan_of(cluster: Cluster, facts: Facts, request: ResourceRequest) -> Plan:
    steps = rules.plan_steps(cluster, facts, request)
    tag, server = text(request.tag), text(request.server)
    return Plan(
        op=Op.CREATE_HIERARCHY,
        name=f"create {tag} on {server}",
        command=commands.create_resource(request),
        steps=steps,
        done=rules.done_message(request),
        server=server,
        intro=f"Creating {rules.KINDS[request.kind]} resource {tag} on {server} ({{total}} steps)",
        committed=f"{tag} was created on {server}",
    )


def create(backend: Backend, request: ResourceRequest, session: Session) -> CreateResult:
    tag, server = text(request.tag), text(request.server)
    backend.authorize(
        session, Op.CREATE_HIERARCHY, f"create {tag} on {server}", commands.create_resource(request)
    )
    return execute(backend, plan(backend, request), session)
