"""Errors that core raises on purpose. Anything else escaping core is a bug."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.checks import Problem


class LkError(Exception):
    """Base for every error that core/ raises on purpose."""


class CheckFailed(LkError):
    """One or more rules were violated; nothing was changed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


class OperationError(LkError):
    """A step failed while an operation was executing (after its checks passed)."""

    def __init__(self, message: str, step: str | None = None, *, committed: bool = False) -> None:
        self.step = step
        # True when the operation's changes were committed before the failure (it did
        # happen, and was not rolled back): the message says what was done.
        self.committed = committed
        super().__init__(f"{step}: {message}" if step else message)


class StoreError(LkError):
    """The store cannot be opened or used (corrupt file, newer schema, read-only folder)."""


class ConflictError(StoreError):
    """Someone else changed the same hierarchy since it was read."""


class PermissionDenied(LkError):
    """The session's role does not allow the action (see core.permissions)."""

    def __init__(self, message: str, operation: str = "") -> None:
        self.operation = operation  # a core.permissions.Op value
        super().__init__(message)


class AuthenticationFailed(LkError):
    """Wrong user or password, or too many failures for now."""


class UnknownHostKey(LkError):
    """A machine's SSH host key is not trusted yet. The message shows its fingerprints;
    only once the user compared them and said yes is :meth:`trust` called."""

    def __init__(self, message: str, trust: Callable[[], None]) -> None:
        super().__init__(message)
        self._trust = trust

    def trust(self) -> None:
        """Add the key to the console's own known_hosts (the user said yes)."""
        self._trust()
