"""Who is at the console, and what their role allows (enforced in core).

The local identity is the real uid of the process (``os.getuid()`` → the password
database), never an environment variable. The owner of the data directory is the local
Administrator and needs no password; any other local user is a Guest unless they sign in
as one of the lab's users (``lkctl --user``, File › Connect).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from core import permissions
from core.model import Role
from core.permissions import Op


@dataclass(frozen=True)
class Session:
    user: str
    role: Role
    signed_in: bool = False  # True for a lab user who gave a password

    def may(self, op: Op) -> bool:
        return permissions.allowed(self.role, op)

    def require(self, op: Op) -> None:
        """Refuse ``op`` (PermissionDenied) unless this session's role allows it."""
        permissions.check(self.user, self.role, op)


def local_user() -> str:
    """The name of the real uid running this process."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def local_session(home: Path) -> Session:
    """The local user: Administrator when they own the data directory ``home``, else Guest."""
    uid = os.getuid()
    try:
        owner = home.stat().st_uid
    except FileNotFoundError:
        owner = uid  # not made yet: this user makes it (core.backends.lab.store), and owns it
    except OSError:
        owner = -1
    role = Role.ADMINISTRATOR if owner == uid else Role.GUEST
    return Session(local_user(), role)
