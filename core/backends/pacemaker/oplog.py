"""The output-panel lines and the history entry of one operation on a Pacemaker cluster."""

from __future__ import annotations

import logging
import time

from core import permissions
from core.backends.pacemaker.records import Records
from core.errors import PermissionDenied
from core.events import EventHub, LogLine, OperationFinished
from core.permissions import Op
from core.session import Session

log = logging.getLogger(__name__)


def refuse(records: Records, session: Session, op: Op, operation: str, command: str) -> None:
    """Raise PermissionDenied (recorded in the history) unless ``session`` may run ``op``."""
    if session.may(op):
        return
    message = permissions.refusal(session.user, session.role, op)
    record_refusal(
        records, session.user, session.role.label, operation or op.label, command, message
    )
    raise PermissionDenied(message, op.value)


def record_refusal(
    records: Records, user: str, role: str, operation: str, command: str, message: str
) -> None:
    log.warning("refused %s for %s (%s): %s", operation, user, role, message)
    records.record(
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
    """Lines said while an operation runs: published at once, stored as they come."""

    def __init__(
        self,
        records: Records,
        operation: str,
        hub: EventHub | None,
        session: Session,
        command: str = "",
    ) -> None:
        self.records = records
        self.operation = operation
        self.hub = hub
        self.session = session
        self.command = command
        self.started = time.time()
        self.said: list[str] = []
        if command:
            self.say("INFO", f"Command: {command}")

    def say(self, level: str, text: str) -> None:
        log.log(logging.getLevelName(level), "%s: %s", self.operation, text)
        self.said.append(text if level == "INFO" else f"{level}: {text}")
        self.records.add_lines(self.operation, [(level, text)])
        if self.hub is not None:
            self.hub.publish(LogLine(self.operation, level, text))

    def finish(self, *, ok: bool, message: str) -> None:
        self.records.record(
            started=self.started,
            user=self.session.user,
            role=self.session.role.label,
            operation=self.operation,
            command=self.command,
            steps=self.said,
            ok=ok,
            result=message,
        )
        if self.hub is not None:
            self.hub.publish(OperationFinished(self.operation, ok, message))


__all__ = ["OperationLog", "record_refusal", "refuse"]
