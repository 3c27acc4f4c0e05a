"""Create Dependency and Delete Dependency through a backend."""

from __future__ import annotations

from core import commands
from core.backend import Backend, require
from core.capabilities import DEPENDENCIES
from core.checks import Problem
from core.model import Cluster
from core.permissions import Op
from core.plan import ApplyResult, Plan
from core.rules import dependency as rules
from core.rules.dependency import DependencyRequest
from core.session import Session

__all__ = [
    "DependencyRequest",
    "check_create",
    "check_delete",
    "create",
    "create_plan",
    "delete",
    "delete_plan",
]


def check_create(backend: Backend, request: DependencyRequest) -> list[Problem]:
    return rules.check_create(backend.snapshot(), request)


def check_delete(backend: Backend, request: DependencyRequest) -> list[Problem]:
    return rules.check_delete(backend.snapshot(), request)


def create_plan(cluster: Cluster, request: DependencyRequest) -> Plan:
    found, step = rules.create_step(cluster, request)
    return Plan(
        op=Op.CREATE_DEPENDENCY,
        name=f"create dependency {step.parent_tag} → {step.child_tag}",
        command=commands.dependency("create", request),
        steps=(step,),
        hierarchy_id=found.parent_h.id,
        version=found.parent_h.version,
        done=f"{step.parent_tag} now depends on {step.child_tag} on "
        f"{', '.join(step.servers)}: {step.child_tag} comes in service first and goes out "
        "of service last.",
        extra=rules.create_notes(found),
        server=found.server,
        committed=f"{step.parent_tag} depends on {step.child_tag}",
    )


def delete_plan(cluster: Cluster, request: DependencyRequest) -> Plan:
    found, step = rules.delete_step(cluster, request)
    return Plan(
        op=Op.DELETE_DEPENDENCY,
        name=f"delete dependency {step.parent_tag} → {step.child_tag}",
        command=commands.dependency("delete", request),
        steps=(step,),
        hierarchy_id=found.parent_h.id,
        version=found.parent_h.version,
        done=f"{step.parent_tag} no longer depends on {step.child_tag}: {step.child_tag} is "
        f"the root of a hierarchy of its own on {', '.join(step.servers)}.",
        server=found.server,
        committed=f"{step.parent_tag} no longer depends on {step.child_tag}",
    )


def _authorize(
    backend: Backend, session: Session, op: Op, action: str, request: DependencyRequest
) -> None:
    backend.authorize(
        session,
        op,
        f"{action} dependency {request.parent} → {request.child}",
        commands.dependency(action, request),
    )


def create(backend: Backend, request: DependencyRequest, session: Session) -> ApplyResult:
    require(backend, DEPENDENCIES, "Create Dependency")
    _authorize(backend, session, Op.CREATE_DEPENDENCY, "create", request)
    return backend.apply(create_plan(backend.snapshot(), request), session)


def delete(backend: Backend, request: DependencyRequest, session: Session) -> ApplyResult:
    require(backend, DEPENDENCIES, "Delete Dependency")
    _authorize(backend, session, Op.DELETE_DEPENDENCY, "delete", request)
    return backend.apply(delete_plan(backend.snapshot(), request), session)
