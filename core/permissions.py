"""The one permission table: every operation and the least role that may run it.

Consulted by every operation in core (nothing that changes state runs without it), by
the console's menus (an action a role may not run is disabled, its tooltip says why) and
by ``lkctl`` (which goes through the same operations). The values of :class:`Op` are
the names of the console's actions (``core.availability``) where there is one.

DOMAIN.md, "Roles": Guest views; Operator also brings hierarchies in and out of service
and switches them over; Administrator does everything. **(ours)** for what LifeKeeper
does not name: an Operator may also pause, resume and verify a mirror and put writes
through it (what an application on the cluster does); changing how a mirror resyncs
(full resync, speed limit, force online), the lab's servers, its reset and its users
need an Administrator. Confirming (or blocking) a failover that waits for the
administrator is an Operator's, like a switchover; changing Server or Resource
Properties and the comm paths is an Administrator's.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from core.errors import PermissionDenied
from core.model import Role


class Op(enum.Enum):
    """An operation of the console or of ``lkctl``; the value is its stable name."""

    VIEW = "view"  # status, properties, mirror status, history, log
    CREATE_HIERARCHY = "create_hierarchy"
    EXTEND_HIERARCHY = "extend_hierarchy"
    UNEXTEND_HIERARCHY = "unextend_hierarchy"
    DELETE_HIERARCHY = "delete_hierarchy"
    IN_SERVICE = "in_service"
    OUT_OF_SERVICE = "out_of_service"
    SWITCHOVER = "switchover"
    PAUSE_MIRROR = "pause_mirror"
    RESUME_MIRROR = "resume_mirror"
    FULL_RESYNC = "full_resync"
    FORCE_ONLINE = "force_online"
    SPEED_LIMIT = "speed_limit"
    VERIFY_MIRROR = "verify_mirror"
    STOP_SERVER = "stop_server"
    START_SERVER = "start_server"
    LAB_WRITE = "lab_write"
    LAB_WORKLOAD = "lab_workload"
    LAB_RESET = "lab_reset"
    ADD_USER = "add_user"
    REMOVE_USER = "remove_user"
    CREATE_DEPENDENCY = "create_dependency"
    DELETE_DEPENDENCY = "delete_dependency"
    # Server and Resource Properties, comm paths, failover confirmation
    SET_SERVER_PROPERTIES = "set_server_properties"
    SET_RESOURCE_PROPERTIES = "set_resource_properties"
    CREATE_COMM_PATH = "create_comm_path"
    DELETE_COMM_PATH = "delete_comm_path"
    COMM_PATH_FAULT = "comm_path_fault"
    CONFIRM_FAILOVER = "confirm_failover"
    RESIZE_MIRROR = "resize_mirror"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Op.VIEW: "Viewing the cluster",
    Op.CREATE_HIERARCHY: "Create Resource Hierarchy",
    Op.EXTEND_HIERARCHY: "Extend Resource Hierarchy",
    Op.UNEXTEND_HIERARCHY: "Unextend Resource Hierarchy",
    Op.DELETE_HIERARCHY: "Delete Resource Hierarchy",
    Op.IN_SERVICE: "In Service",
    Op.OUT_OF_SERVICE: "Out of Service",
    Op.SWITCHOVER: "Switchover",
    Op.PAUSE_MIRROR: "Pause Mirror",
    Op.RESUME_MIRROR: "Resume Mirror",
    Op.FULL_RESYNC: "Full Resync",
    Op.FORCE_ONLINE: "Force Online",
    Op.SPEED_LIMIT: "Set Speed Limit",
    Op.VERIFY_MIRROR: "Verify Mirror",
    Op.STOP_SERVER: "Stop Server",
    Op.START_SERVER: "Start Server",
    Op.LAB_WRITE: "Writing through a mirror",
    Op.LAB_WORKLOAD: "Running a workload through a mirror",
    Op.LAB_RESET: "Resetting the lab",
    Op.ADD_USER: "Adding a user",
    Op.REMOVE_USER: "Removing a user",
    Op.CREATE_DEPENDENCY: "Create Dependency",
    Op.DELETE_DEPENDENCY: "Delete Dependency",
    Op.SET_SERVER_PROPERTIES: "Changing Server Properties",
    Op.SET_RESOURCE_PROPERTIES: "Changing Resource Properties",
    Op.CREATE_COMM_PATH: "Create Comm Path",
    Op.DELETE_COMM_PATH: "Delete Comm Path",
    Op.COMM_PATH_FAULT: "Failing or restoring a lab comm path",
    Op.CONFIRM_FAILOVER: "Confirming a failover",
    Op.RESIZE_MIRROR: "Resize Mirror",
}

_G, _O, _A = Role.GUEST, Role.OPERATOR, Role.ADMINISTRATOR

TABLE: Mapping[Op, Role] = MappingProxyType(
    {
        Op.VIEW: _G,
        Op.IN_SERVICE: _O,
        Op.OUT_OF_SERVICE: _O,
        Op.SWITCHOVER: _O,
        Op.PAUSE_MIRROR: _O,
        Op.RESUME_MIRROR: _O,
        Op.VERIFY_MIRROR: _O,
        Op.LAB_WRITE: _O,
        Op.LAB_WORKLOAD: _O,
        Op.CREATE_HIERARCHY: _A,
        Op.EXTEND_HIERARCHY: _A,
        Op.UNEXTEND_HIERARCHY: _A,
        Op.DELETE_HIERARCHY: _A,
        Op.FULL_RESYNC: _A,
        Op.FORCE_ONLINE: _A,
        Op.SPEED_LIMIT: _A,
        Op.STOP_SERVER: _A,
        Op.START_SERVER: _A,
        Op.LAB_RESET: _A,
        Op.ADD_USER: _A,
        Op.REMOVE_USER: _A,
        Op.CREATE_DEPENDENCY: _A,
        Op.DELETE_DEPENDENCY: _A,
        Op.SET_SERVER_PROPERTIES: _A,
        Op.SET_RESOURCE_PROPERTIES: _A,
        Op.CREATE_COMM_PATH: _A,
        Op.DELETE_COMM_PATH: _A,
        Op.COMM_PATH_FAULT: _A,
        Op.CONFIRM_FAILOVER: _O,
        Op.RESIZE_MIRROR: _A,
    }
)


def least_role(op: Op) -> Role:
    """The least role that may run ``op``."""
    return TABLE[op]


def allowed(role: Role, op: Op) -> bool:
    return role >= TABLE[op]


def refusal(user: str, role: Role, op: Op) -> str:
    """Why ``user`` (signed in as ``role``) may not run ``op``: one sentence."""
    needed = TABLE[op]
    text = f"{op.label} needs the {needed.label} role; {user} is signed in as {role.label}."
    if needed is Role.ADMINISTRATOR:
        text += f" Sign in as an {Role.ADMINISTRATOR.label} or ask one."
    return text


def check(user: str, role: Role, op: Op) -> None:
    """Raise PermissionDenied unless ``role`` may run ``op``."""
    if not allowed(role, op):
        raise PermissionDenied(refusal(user, role, op), op.value)


__all__ = ["TABLE", "Op", "allowed", "check", "least_role", "refusal"]
