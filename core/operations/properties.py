"""Server Properties and Resource Properties through a backend: what changed is applied
as one plan (all of it, or nothing); what did not change is left alone."""

from __future__ import annotations

from core import commands
from core.backend import Backend, require
from core.capabilities import SERVER_SETTINGS
from core.events import EventHub
from core.permissions import Op
from core.plan import Plan, SetMirrorMode, SetPriorities, Step
from core.rules import resource_properties as resource_rules
from core.rules import server_properties as server_rules
from core.rules.resource_properties import ResourcePropertiesRequest
from core.rules.server_properties import ServerPropertiesRequest
from core.session import Session

__all__ = [
    "NO_CHANGE",
    "ResourcePropertiesRequest",
    "ServerPropertiesRequest",
    "resource_command",
    "server_command",
    "set_resource",
    "set_server",
]

NO_CHANGE = "Nothing changed: every property already has that value."


def server_command(backend: Backend, request: ServerPropertiesRequest) -> str:
    peers = [s.name for s in backend.snapshot().servers if s.name != request.server]
    return _server_command(request, peers)


def _server_command(request: ServerPropertiesRequest, peers: list[str]) -> str:
    timeout = request.confirm_timeout
    return commands.server_set(
        request.server,
        request.shutdown_strategy,
        list(request.confirm_failover_from),
        int(str(timeout).strip()) if str(timeout).strip().isdigit() else 0,
        request.confirm_default,
        peers,
    )


def set_server(
    backend: Backend,
    request: ServerPropertiesRequest,
    session: Session,
    *,
    hub: EventHub | None = None,
) -> str:
    """Apply Server Properties; CheckFailed (nothing changed) on a bad value."""
    cluster = backend.snapshot()
    peers = [s.name for s in cluster.servers if s.name != request.server]
    command = _server_command(request, peers)
    name = f"server properties {request.server}"
    backend.authorize(session, Op.SET_SERVER_PROPERTIES, name, command)
    require(backend, SERVER_SETTINGS, "Changing Server Properties")
    step = server_rules.step(cluster, request)
    if step is None:
        return NO_CHANGE
    plan = Plan(Op.SET_SERVER_PROPERTIES, name, command, (step,), server=step.server)
    return backend.apply(plan, session, hub=hub).message


def resource_command(request: ResourcePropertiesRequest, switchback: str) -> str:
    return commands.resource_set(
        request.tag,
        request.switchback_type or switchback,
        list(request.priorities.items()),
        list(request.asynchronous.items()),
        request.speed_limit_kbps,
    )


def set_resource(
    backend: Backend,
    request: ResourcePropertiesRequest,
    session: Session,
    *,
    hub: EventHub | None = None,
) -> str:
    """Apply Resource Properties; CheckFailed (nothing changed) on a bad value."""
    cluster = backend.snapshot()
    name = f"resource properties {request.tag}"
    found = cluster.find_tag(request.tag.strip()) if request.tag else None
    h = cluster.hierarchy(found.hierarchy_id) if found is not None else None
    command = resource_command(request, h.switchback.value if h is not None else "")
    backend.authorize(session, Op.SET_RESOURCE_PROPERTIES, name, command)
    h, steps = resource_rules.steps(cluster, request)
    if not steps:
        return NO_CHANGE
    plan = Plan(
        Op.SET_RESOURCE_PROPERTIES,
        f"resource properties {h.root_tag}",
        command,
        steps,
        h.id,
        h.version,
        committed=f"the properties of {h.root_tag} were changed",
        done=_done_message(steps),
    )
    return backend.apply(plan, session, hub=hub).message


def _done_message(steps: tuple[Step, ...]) -> str:
    """What changed, said when the priorities or the switchback did (their step says
    nothing as it runs; the other steps' lines are the message otherwise)."""
    if not any(isinstance(s, SetPriorities) for s in steps):
        return ""
    said = []
    for s in steps:
        if isinstance(s, SetPriorities):
            shown = ", ".join(f"{server}={n}" for server, n in s.priorities)
            said.append(f"Priorities of {s.root_tag}: {shown}")
            if s.switchback is not None:
                said.append(f"Switchback Type of {s.root_tag}: {s.switchback.value}")
        elif isinstance(s, SetMirrorMode):
            said.append(f"{s.title} (for the writes from now on)")
        else:
            said.append(s.title.rstrip("."))
    return "; ".join(said) + "."
