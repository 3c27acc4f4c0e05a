"""Who is at the console, and what their role allows (enforced here, in core)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from core.errors import PermissionDenied
from core.model import Role


@dataclass(frozen=True)
class Session:
    user: str
    role: Role

    def require(self, needed: Role, action: str) -> None:
        """Refuse ``action`` unless this session's role is at least ``needed``."""
        if self.role < needed:
            raise PermissionDenied(
                f"{action} needs the {needed.label} role; {self.user} is signed in as "
                f"{self.role.label}. Sign in as an {Role.ADMINISTRATOR.label} or ask one."
                if needed is Role.ADMINISTRATOR
                else f"{action} needs the {needed.label} role; {self.user} is signed in as "
                f"{self.role.label}."
            )


def local_administrator() -> Session:
    """The local user who owns the data directory: Administrator, no password."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "local"
    return Session(user, Role.ADMINISTRATOR)
