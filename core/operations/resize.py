"""Resize Mirror through a backend (``core.rules.resize`` says what it means)."""

from __future__ import annotations

from core import commands
from core.availability import NO_RESIZE
from core.backend import Backend, NotAvailable
from core.capabilities import FILESYSTEM_GROW, MIRROR_RESIZE
from core.events import EventHub
from core.facts import Facts, gather
from core.model import Cluster
from core.permissions import Op
from core.plan import Plan
from core.rules import resize as rules
from core.rules.resize import ResizeRequest
from core.session import Session
from core.status import format_size

__all__ = ["ResizeRequest", "dry_run_text", "facts_for", "plan", "plan_of", "resize"]


def facts_for(backend: Backend, cluster: Cluster, request: ResizeRequest) -> Facts:
    """The free space by each copy of the volume (I/O: not on a GUI thread)."""
    return gather(backend, rules.needs(cluster, request))


def plan_of(cluster: Cluster, facts: Facts, request: ResizeRequest, grows_fs: bool = False) -> Plan:
    """The plan (pure); CheckFailed naming the field when it cannot be done (``grows_fs``:
    the backend grows the file system on top too, ``FILESYSTEM_GROW``)."""
    steps = rules.steps(cluster, facts, request)
    target = rules.check(cluster, facts, request)
    h, tag = target.hierarchy, target.tag
    size = format_size(target.new_size)
    note = rules.filesystem_note(h, target.mirror, grows_fs)
    return Plan(
        op=Op.RESIZE_MIRROR,
        name=f"resize mirror {tag} to {size}",
        command=commands.resize_mirror(tag, request.size.strip()),
        steps=steps,
        hierarchy_id=h.id,
        version=h.version,
        done=f"{tag} is {size} on every server; the targets resync the new space."
        + (f" {note}" if note else ""),
        server=target.mirror.source,
        intro=f"Resizing {tag} from {format_size(target.mirror.volume_size)} to {size} "
        "({total} steps)",
        committed=f"{tag} was resized to {size}",
        after_failure="Start the resync with `lkctl mirror resume` once the cause is fixed.",
    )


def dry_run_text(the_plan: Plan) -> list[str]:
    """What ``lkctl mirror resize … --dry-run`` prints, and the Resize Mirror dialog shows."""
    return [
        f"Plan: {the_plan.name}",
        *(f"  {i}. {title}" for i, title in enumerate(the_plan.titles, 1)),
    ]


def refuse_unless_available(backend: Backend, tag: str) -> None:
    """NotAvailable, in the menu's words, where the backend cannot resize a mirror."""
    if MIRROR_RESIZE not in backend.capabilities:
        raise NotAvailable(NO_RESIZE.format(tag=tag))


def plan(backend: Backend, request: ResizeRequest, cluster: Cluster | None = None) -> Plan:
    refuse_unless_available(backend, request.tag)
    cluster = cluster or backend.snapshot()
    grows = FILESYSTEM_GROW in backend.capabilities
    return plan_of(cluster, facts_for(backend, cluster, request), request, grows)


def resize(
    backend: Backend, request: ResizeRequest, session: Session, *, hub: EventHub | None = None
) -> str:
    """Grow the mirror on every server (targets first); returns the result message."""
    command = commands.resize_mirror(request.tag, request.size)
    refuse_unless_available(backend, request.tag)
    backend.authorize(session, Op.RESIZE_MIRROR, f"resize mirror {request.tag}", command)
    return backend.apply(plan(backend, request), session, hub=hub).message
