"""The output-panel lines of one operation."""

from __future__ import annotations

import logging

from core.events import EventHub, LogLine, OperationFinished
from core.store import Store, Txn

log = logging.getLogger(__name__)


class OperationLog:
    """The output-panel lines of one operation: published at once, stored in the store.

    Lines said while the operation's transaction is open are written with it (a second
    writer would wait for that transaction); after a rollback they are written anew.
    """

    def __init__(self, operation: str, hub: EventHub | None) -> None:
        self.operation = operation
        self.hub = hub
        self._unsaved: list[tuple[str, str]] = []

    def say(self, level: str, text: str) -> None:
        log.log(logging.getLevelName(level), "%s: %s", self.operation, text)
        self._unsaved.append((level, text))
        if self.hub is not None:
            self.hub.publish(LogLine(self.operation, level, text))

    def flush(self, txn: Txn) -> None:
        for level, text in self._unsaved:
            txn.add_log_line(self.operation, level, text)
        self._unsaved.clear()

    def finish(self, store: Store, *, ok: bool, message: str) -> None:
        with store.transaction() as txn:
            self.flush(txn)
        if self.hub is not None:
            self.hub.publish(OperationFinished(self.operation, ok, message))
