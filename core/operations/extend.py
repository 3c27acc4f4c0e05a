"""Extend Resource Hierarchy through a backend (DOMAIN.md is the specification).

The wizard and ``lkctl extend`` both build an :class:`ExtendRequest`; :func:`defaults`
gives every default, :func:`check` every problem, :func:`plan` the steps a user will
see, and :func:`execute` does them: all of them, or (before the commit) none.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from core import commands
from core.backend import Backend, StepCallback
from core.checks import Problem
from core.events import EventHub
from core.facts import Facts, gather
from core.model import Cluster
from core.permissions import Op
from core.plan import Plan
from core.rules import extend as rules
from core.rules.extend import DataKeeperExtend, ExtendDefaults, ExtendRequest
from core.session import Session

__all__ = [
    "DataKeeperExtend",
    "ExtendDefaults",
    "ExtendRequest",
    "ExtendResult",
    "check",
    "defaults",
    "execute",
    "extend",
    "facts_for",
    "plan",
]


@dataclass(frozen=True)
class ExtendResult:
    hierarchy_id: int
    target_server: str
    steps: tuple[str, ...]
    message: str


def facts_for(
    backend: Backend,
    cluster: Cluster,
    request: ExtendRequest | None = None,
    *,
    known: Facts | None = None,
    **choices: str | None,
) -> Facts:
    """What the rules need to know about the target's disks (I/O: not on a GUI thread)."""
    return gather(backend, rules.needs(cluster, request, **choices), known)


def defaults(
    backend: Backend,
    cluster: Cluster | None = None,
    *,
    template_server: str | None = None,
    tag: str | None = None,
    target_server: str | None = None,
    from_create: bool = False,
) -> ExtendDefaults:
    cluster = cluster or backend.snapshot()
    facts = facts_for(
        backend, cluster, template_server=template_server, tag=tag, target_server=target_server
    )
    return rules.defaults(
        cluster,
        facts,
        template_server=template_server,
        tag=tag,
        target_server=target_server,
        from_create=from_create,
    )


def check(
    backend: Backend, request: ExtendRequest, cluster: Cluster | None = None
) -> list[Problem]:
    cluster = cluster or backend.snapshot()
    return rules.check_request(cluster, facts_for(backend, cluster, request), request)


def plan(backend: Backend, request: ExtendRequest, cluster: Cluster | None = None) -> Plan:
    """The plan of ``request``; CheckFailed when it has problems."""
    cluster = cluster or backend.snapshot()
    facts = facts_for(backend, cluster, request)
    return plan_of(cluster, facts, request)


def plan_of(cluster: Cluster, facts: Facts, request: ExtendRequest) -> Plan:
    """The plan of ``request`` from facts gathered already (pure)."""
    steps = rules.plan_steps(cluster, facts, request)
    h = rules.hierarchy_of(cluster, request)
    full = rules.complete(h, request.template_server, facts, request)
    target = request.target_server
    return Plan(
        op=Op.EXTEND_HIERARCHY,
        name=f"extend {h.root_tag} to {target}",
        command=commands.extend(full),
        steps=steps,
        hierarchy_id=h.id,
        version=h.version,
        done=rules.done_message(h, target),
        server=target,
        intro=f"Extending {h.root_tag} from {request.template_server} to {target} "
        "({total} steps)",
        committed=f"{h.root_tag} was extended to {target}",
        after_failure="Start it with `lkctl mirror resume` once the cause is fixed.",
    )


def execute(
    backend: Backend,
    extend_plan: Plan,
    session: Session,
    *,
    hub: EventHub | None = None,
    on_step: StepCallback | None = None,
    cancel: threading.Event | None = None,
) -> ExtendResult:
    """Run the plan: all or nothing. Raises OperationError naming the failed step.

    ``on_step(index, total, title, status)`` is called with status "running", "done",
    "failed"; ``cancel`` is checked before each step (a cancelled extend is rolled back).
    """
    backend.authorize(session, Op.EXTEND_HIERARCHY, extend_plan.name, extend_plan.command)
    result = backend.apply(extend_plan, session, hub=hub, on_step=on_step, cancel=cancel)
    assert extend_plan.hierarchy_id is not None
    return ExtendResult(
        extend_plan.hierarchy_id, extend_plan.server, tuple(extend_plan.titles), result.message
    )


def extend(
    backend: Backend,
    request: ExtendRequest,
    session: Session,
    *,
    hub: EventHub | None = None,
    on_step: StepCallback | None = None,
) -> ExtendResult:
    """Plan and execute in one call (checks included)."""
    backend.authorize(
        session,
        Op.EXTEND_HIERARCHY,
        f"extend {request.tag_to_extend} to {request.target_server}",
        commands.extend(request),
    )
    return execute(backend, plan(backend, request), session, hub=hub, on_step=on_step)
