"""The output-panel lines of one operation."""

from __future__ import annotations

import logging
import time

from core import permissions
from core.backends.lab import history
from core.backends.lab.store import Store, Txn
from core.errors import PermissionDenied
from core.events import EventHub, LogLine, OperationFinished
from core.permissions import Op
from core.session import Session

log = logging.getLogger(__name__)


def authorize(
    store: Store, session: Session, op: Op, operation: str = "", command: str = ""
) -> None:
    """Refuse ``op`` unless the permission table lets ``session`` run it.

    A refusal changes nothing but the history, which records who tried what, with which
    role, and "refused: …".
    """
    if session.may(op):
        return
    message = permissions.refusal(session.user, session.role, op)
    record_refusal(store, session.user, session.role.label, operation or op.label, command, message)
    raise PermissionDenied(message, op.value)


def record_refusal(
    store: Store, user: str, role: str, operation: str, command: str, message: str
) -> None:
    """One history entry for an attempt that was refused (role, or sign-in)."""
    log.warning("refused %s for %s (%s): %s", operation, user, role, message)
    with store.transaction() as txn:
        history.record(
            txn,
            started=time.time(),
            user=user,
            role=role,
            operation=operation,
            command=command,
            steps=[],
            ok=False,
            result=f"refused: {message}",
        )


class OperationLog:
    """The output-panel lines of one operation: published at once, stored in the store.

    Lines said while the operation's transaction is open are written with it (a second
    writer would wait for that transaction); after a rollback they are written anew.
    With a ``session``, :meth:`finish` also records the operation in the history, with
    ``command``, the equivalent ``lkctl`` line (said first, in the output too).
    """

    def __init__(
        self,
        operation: str,
        hub: EventHub | None,
        session: Session | None = None,
        command: str = "",
    ) -> None:
        self.operation = operation
        self.hub = hub
        self.session = session
        self.command = command
        self.started = time.time()
        self._unsaved: list[tuple[str, str]] = []
        self._said: list[str] = []
        if command:
            self.say("INFO", f"Command: {command}")

    def say(self, level: str, text: str) -> None:
        log.log(logging.getLevelName(level), "%s: %s", self.operation, text)
        self._unsaved.append((level, text))
        self._said.append(text if level == "INFO" else f"{level}: {text}")
        if self.hub is not None:
            self.hub.publish(LogLine(self.operation, level, text))

    def flush(self, txn: Txn) -> None:
        for level, text in self._unsaved:
            txn.add_log_line(self.operation, level, text)
        self._unsaved.clear()

    def finish(self, store: Store, *, ok: bool, message: str) -> None:
        with store.transaction() as txn:
            self.flush(txn)
            if self.session is not None:
                history.record(
                    txn,
                    started=self.started,
                    user=self.session.user,
                    role=self.session.role.label,
                    operation=self.operation,
                    command=self.command,
                    steps=self._said,
                    ok=ok,
                    result=message,
                )
        if self.hub is not None:
            self.hub.publish(OperationFinished(self.operation, ok, message))
