"""The one boundary between the console and a cluster: the :class:`Backend` protocol.

Operations (``core.operations``), lkctl and the GUI talk to a cluster only through this
protocol; :func:`core.connection.open` makes one from a spec (``"lab"``,
``"lab:/path"``, later ``"pacemaker"`` and ``"ssh://root@node1"``). What a console needs
from a cluster, and nothing about how a backend does it:

- :meth:`Backend.snapshot`: servers, hierarchies, resources, states, mirrors, comm paths;
- :meth:`Backend.probe` and :meth:`Backend.volumes`: facts about a server's disks that
  the rules need (gathered beforehand: rules do no I/O, see ``core.facts``);
- :meth:`Backend.apply`: carry out a plan's typed steps (``core.plan``) with the
  backend's own atomicity, after checking the permission table again;
- :meth:`Backend.watch`: publish :class:`~core.events.ClusterChanged` (with the new
  snapshot) and the output panel's new lines on a hub whenever anyone changes anything;
- who may do what (:meth:`Backend.local_session`, :meth:`Backend.authenticate`,
  :meth:`Backend.authorize`) and the record of what was done (:meth:`Backend.history`,
  :meth:`Backend.log_lines`);
- :attr:`Backend.capabilities`: what this backend can do beyond the common set (the
  lab's simulated server power, writes through a mirror, reset, users), so that the
  console shows only actions that exist and ``lkctl`` says which are not available.

A backend is used from several threads at once (the GUI's watcher, its workers); each
implementation makes that safe. Nothing here imports a backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from core.capabilities import (
    COMM_PATH_FAULTS,
    COMM_PATHS,
    MIRROR_WRITES,
    RESET,
    SERVER_POWER,
    SERVER_SETTINGS,
    USERS,
    WHAT_IF,
)
from core.errors import LkError
from core.events import EventHub
from core.facts import NetworkInfo, PathInfo, VolumeInfo
from core.history import Entry, LogRow
from core.model import Cluster, Role
from core.permissions import Op
from core.plan import ApplyResult, Plan
from core.session import Session

StepCallback = Callable[[int, int, str, str], None]  # index, total, title, status


class NotAvailable(LkError):
    """The backend cannot do this (it lacks the capability)."""


@runtime_checkable
class Watch(Protocol):
    """A running watch of a cluster (see :meth:`Backend.watch`)."""

    def reload(self) -> None:
        """Publish a snapshot now (after this process changed the cluster)."""

    def stop(self) -> None:
        """Stop watching and wait for the watch to end."""


class Backend(Protocol):
    """What a console needs from a cluster."""

    kind: str  # "lab", "pacemaker"
    name: str  # what the console calls it: "lab", "lab:/srv/labs/a", "ssh://root@n1"
    capabilities: frozenset[str]

    def snapshot(self) -> Cluster:
        """A consistent snapshot of the cluster."""
        ...

    def probe(self, server: str, path: str) -> PathInfo:
        """A server path: exists, folder, file system type, writable, free space."""
        ...

    def volumes(self, server: str) -> tuple[VolumeInfo, ...]:
        """The volumes a DataKeeper resource of ``server`` could replicate."""
        ...

    def network(self, server: str) -> NetworkInfo:
        """``server``'s own addresses, and what an IP resource there is proposed (a lab
        proposes from its service network; a real cluster proposes none)."""
        ...

    def apply(
        self,
        plan: Plan,
        session: Session,
        *,
        hub: EventHub | None = None,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ApplyResult:
        """Carry out ``plan``: all of it, or (before its commit) nothing.

        Raises PermissionDenied (the table says no; recorded in the history),
        ConflictError (the hierarchy changed since the plan was made) and
        OperationError naming the failed step (``committed`` when the plan's changes
        had been committed before the failure: then the message says what was done)."""
        ...

    def watch(self, hub: EventHub, *, shown: Cluster | None = None, last_log_id: int = 0) -> Watch:
        """Start publishing ClusterChanged (with the snapshot) and LogRows on ``hub``
        whenever the cluster changes (``shown``: what the console shows already)."""
        ...

    def local_session(self) -> Session:
        """Who the local user is on this cluster, without a password."""
        ...

    def authenticate(self, user: str, password: str) -> Session:
        """A session for ``user``; AuthenticationFailed when the password is wrong."""
        ...

    def authorize(self, session: Session, op: Op, operation: str = "", command: str = "") -> None:
        """Refuse (PermissionDenied, recorded in the history) unless ``session`` may run ``op``."""
        ...

    def record_refusal(
        self, user: str, role: str, operation: str, command: str, message: str
    ) -> None:
        """Record in the history an attempt that was refused."""
        ...

    def history(self, since: float | None = None) -> list[Entry]:
        """The operations recorded, oldest first."""
        ...

    def log_lines(
        self, after: int = 0, limit: int = 2000, server: str | None = None
    ) -> list[LogRow]:
        """The output panel's lines newer than ``after`` (0: the last ``limit``); with
        ``server``, only those about that server (its LifeKeeper log)."""
        ...

    def server_log(self, server: str, after: int = 0) -> list[LogRow]:
        """The lines of ``server``'s log newer than ``after`` (0: every line kept), oldest
        first: the output lines that name it (``core.serverlog``)."""
        ...

    def dirty_chunks(self, resource_id: int) -> dict[str, int]:
        """Per target of a mirror, how many chunks are still to copy, counted now."""
        ...

    def resync_running(self, resource_id: int, target: str) -> bool | None:
        """Whether something is copying to that mirror target now (None: cannot tell)."""
        ...

    def local_folder(self, server: str) -> Path | None:
        """The folder of this machine holding what ``server`` calls ``/`` (the lab's
        server folders), so a file dialog can browse it; None for a real machine."""
        ...

    def close(self) -> None: ...


class ServerPower(Protocol):
    """SERVER_POWER: make a server fail, and bring it back."""

    def stop_server(
        self, server: str, session: Session, hub: EventHub | None = None
    ) -> list[str]: ...

    def start_server(
        self, server: str, session: Session, hub: EventHub | None = None
    ) -> list[str]: ...


class MirrorWrites(Protocol):
    """MIRROR_WRITES: put writes through a mirror, as an application would."""

    def write(
        self, tag: str, offset: int, length: int, session: Session, pattern: str = "random"
    ) -> str: ...

    def workload(
        self,
        tag: str,
        seconds: float,
        rate_mb: float,
        session: Session,
        stop: threading.Event | None = None,
    ) -> str: ...


class ServerSettings(Protocol):
    """SERVER_SETTINGS: a clean stop that follows the server's Shutdown Strategy, and the
    answer to a failover that waits for the administrator's confirmation."""

    def shutdown_server(
        self, server: str, session: Session, hub: EventHub | None = None
    ) -> list[str]: ...

    def confirm_failover(
        self, server: str, accept: bool, session: Session, hub: EventHub | None = None
    ) -> list[str]: ...


class CommPathFaults(Protocol):
    """COMM_PATH_FAULTS: fail a comm path and bring it back (every path between the two
    servers when ``path`` is empty; else the one whose priority it is)."""

    def set_comm_path(
        self,
        server: str,
        peer: str,
        path: object,
        up: bool,
        session: Session,
        hub: EventHub | None = None,
    ) -> list[str]: ...


class Reset(Protocol):
    """RESET: throw the cluster away and make it anew."""

    def reset(self, session: Session) -> str: ...


class UserAdmin(Protocol):
    """USERS: the backend's own users."""

    def add_user(self, name: str, role: Role, password: str, session: Session) -> None: ...

    def remove_user(self, name: str, session: Session) -> None: ...

    def list_users(self) -> list[tuple[str, Role]]: ...


class WhatIf(Protocol):
    """WHAT_IF: what a plan would do to every hierarchy (which resources stop, where
    they start, which mirrors change role), one line each; nothing is changed. The lab
    computes it in core from its snapshot (``core.rules.whatif``); Pacemaker asks
    ``crm_simulate``."""

    def what_if(self, plan: Plan) -> list[str]: ...


T = TypeVar("T")


def require(backend: Backend, capability: str, what: str) -> None:
    """Raise NotAvailable unless ``backend`` has ``capability``."""
    if capability not in backend.capabilities:
        raise NotAvailable(f"{what} is not available on a {backend.kind} cluster")


__all__ = [
    "COMM_PATHS",
    "COMM_PATH_FAULTS",
    "MIRROR_WRITES",
    "RESET",
    "SERVER_POWER",
    "SERVER_SETTINGS",
    "USERS",
    "WHAT_IF",
    "Backend",
    "CommPathFaults",
    "MirrorWrites",
    "NotAvailable",
    "Reset",
    "ServerPower",
    "ServerSettings",
    "StepCallback",
    "UserAdmin",
    "Watch",
    "WhatIf",
    "require",
]
