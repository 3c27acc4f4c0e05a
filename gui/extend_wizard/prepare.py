"""What the wizard opens with, gathered on a worker before it opens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.backend import Backend
from core.facts import Facts
from core.model import Cluster
from core.operations import extend as operation
from core.rules import extend
from gui import jobs
from gui.jobs import Job


@dataclass(frozen=True)
class Prepared:
    """What the wizard opens with: the cluster, and what its defaults need to know."""

    cluster: Cluster
    facts: Facts
    template_server: str | None = None
    tag: str | None = None
    target_server: str | None = None
    from_create: bool = False


def prepare_now(backend: Backend, cluster: Cluster | None = None, **choices: Any) -> Prepared:
    """Gather what the wizard needs, in the calling thread (a worker; or a test)."""
    cluster = cluster if cluster is not None else backend.snapshot()
    wanted = {k: choices.get(k) for k in ("template_server", "tag", "target_server")}
    facts = operation.facts_for(backend, cluster, **wanted)
    extend.defaults(cluster, facts, **wanted)  # CheckFailed now when nothing can be extended
    return Prepared(cluster, facts, from_create=bool(choices.get("from_create")), **wanted)


def prepare(
    backend: Backend,
    cluster: Cluster | None,
    choices: dict[str, Any],
    on_ready: Callable[[Prepared], object],
    on_failed: Callable[[str], None],
) -> Job:
    """Gather what the wizard needs on a worker, then ``on_ready(prepared)``."""
    return jobs.start(
        _PREPARING,
        lambda _signals: prepare_now(backend, cluster, **choices),
        lambda prepared: on_ready(prepared),  # type: ignore[arg-type]
        on_failed,
    )


_PREPARING: set[Job] = set()
