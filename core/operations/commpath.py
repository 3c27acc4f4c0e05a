"""Create Comm Path and Delete Comm Path through a backend."""

from __future__ import annotations

from core import commands
from core.backend import Backend, require
from core.capabilities import COMM_PATHS
from core.errors import CheckFailed
from core.events import EventHub
from core.permissions import Op
from core.plan import CreateCommPath, DeleteCommPath, Plan
from core.rules import commpaths as rules
from core.rules.commpaths import CreateCommPathRequest, DeleteCommPathRequest
from core.session import Session

__all__ = ["CreateCommPathRequest", "DeleteCommPathRequest", "create", "delete"]


def create(
    backend: Backend,
    request: CreateCommPathRequest,
    session: Session,
    *,
    hub: EventHub | None = None,
) -> str:
    command = commands.commpath_create(
        request.server,
        request.peer,
        request.local_address,
        request.remote_address,
        request.priority,
    )
    name = f"create comm path {request.server}-{request.peer}"
    backend.authorize(session, Op.CREATE_COMM_PATH, name, command)
    require(backend, COMM_PATHS, "Creating a comm path")
    done = rules.checked_create(backend.snapshot(), request)
    step = CreateCommPath(
        done.server, done.peer, done.local_address, done.remote_address, int(str(done.priority))
    )
    plan = Plan(
        Op.CREATE_COMM_PATH,
        name,
        commands.commpath_create(
            done.server, done.peer, done.local_address, done.remote_address, done.priority
        ),
        (step,),
        server=done.server,
        done=f"Comm path created: {step.path}.",
    )
    return backend.apply(plan, session, hub=hub).message


def delete(
    backend: Backend,
    request: DeleteCommPathRequest,
    session: Session,
    *,
    hub: EventHub | None = None,
) -> str:
    name = f"delete comm path {request.server}-{request.peer}"
    command = commands.commpath_delete(request.server, request.peer, request.path)
    backend.authorize(session, Op.DELETE_COMM_PATH, name, command)
    require(backend, COMM_PATHS, "Deleting a comm path")
    path = rules.checked_delete(backend.snapshot(), request)
    if not path.path_id:
        raise CheckFailed([])  # pragma: no cover - a backend with COMM_PATHS numbers them
    step = DeleteCommPath(
        path.server,
        path.peer,
        path.local_address,
        path.peer_address,
        path.priority,
        path_id=path.path_id,
    )
    plan = Plan(
        Op.DELETE_COMM_PATH,
        name,
        commands.commpath_delete(path.server, path.peer, path.priority),
        (step,),
        server=path.server,
        done=f"Comm path deleted: {step.path}.",
    )
    return backend.apply(plan, session, hub=hub).message
