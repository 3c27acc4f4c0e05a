"""What-if and ``--dry-run`` through a backend: what a plan would do, changing nothing.

A backend with the WHAT_IF capability answers (the lab from its snapshot, with the pure
rules of ``core.rules.whatif``; Pacemaker with ``crm_simulate``). Where the backend's
own what-if cannot describe a plan (Pacemaker for the steps it cannot do yet), or it has
none, core computes it from the snapshot, and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from core import commands
from core.backend import Backend, WhatIf
from core.capabilities import WHAT_IF
from core.checks import Problem
from core.errors import CheckFailed, LkError
from core.model import Cluster
from core.permissions import Op
from core.plan import Plan, StopServer
from core.rules import service
from core.rules import whatif as rules

__all__ = ["dry_run", "dry_run_of", "plan_stop_server", "what_if"]


def plan_stop_server(cluster: Cluster, server: str) -> Plan:
    """Stop Server as a plan (for its what-if and ``--dry-run``); CheckFailed naming the
    field when the server is unknown or already down."""
    name = service.server(cluster, server)
    s = cluster.server(name)
    if s is None or not s.state.is_alive:
        raise CheckFailed([Problem("server", "already_down", f"{name} is already down.")])
    return Plan(
        Op.STOP_SERVER,
        f"stop server {name}",
        commands.lab_server("stop", name),
        (StopServer(name),),
        server=name,
    )


def what_if(backend: Backend, plan: Plan, cluster: Cluster | None = None) -> list[str]:
    """One line per hierarchy: what ``plan`` would do to it (I/O: not on a GUI thread)."""
    if WHAT_IF in backend.capabilities:
        try:
            return list(cast(WhatIf, backend).what_if(plan))
        except LkError as exc:
            lines = rules.what_if(cluster or backend.snapshot(), plan)
            return [*lines, f"(computed by LK Console: the cluster's own what-if says: {exc})"]
    return rules.what_if(cluster or backend.snapshot(), plan)


def dry_run(backend: Backend, plan: Plan, cluster: Cluster | None = None) -> list[str]:
    """The text of ``lkctl … --dry-run`` and of a confirmation dialog's plan page."""
    return rules.dry_run_text(plan, what_if(backend, plan, cluster))


def dry_run_of(backend: Backend, make_plan: Callable[[Cluster], Plan]) -> list[str]:
    """The dry-run text of the plan ``make_plan`` makes from a fresh snapshot (a
    confirmation dialog's plan page, on a worker: the same text as ``lkctl … --dry-run``)."""
    cluster = backend.snapshot()
    return dry_run(backend, make_plan(cluster), cluster)
