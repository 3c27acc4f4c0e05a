"""The lab's watch: notice any process's change to the store, publish the new state.

A thread of its own polls the store's ``data_version`` (a cheap pragma that changes
when any process commits) every :data:`POLL_INTERVAL_S` and, when it changed or a
reload was asked for, reads the snapshot (sharing every hierarchy that did not change
with the previous one) and the output panel's new lines, and publishes them on the hub
as :class:`~core.events.ClusterChanged` and :class:`~core.events.LogRows`. A big cluster
takes a while to read, so it reads at most a third of the time.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

from core.errors import LkError
from core.events import ClusterChanged, EventHub, LogRows, WatchFailed
from core.model import Cluster, share_unchanged

if TYPE_CHECKING:
    from core.backends.lab import LabBackend

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25
LOG_LINES_KEPT = 2000


class LabWatch:
    """A running watch (see the module docstring); :meth:`stop` ends it."""

    def __init__(
        self, backend: LabBackend, hub: EventHub, shown: Cluster | None, last_log_id: int
    ) -> None:
        self._backend = backend
        self._hub = hub
        self._previous = shown
        self._last_log_id = last_log_id
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._reload = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab_watch", daemon=True)
        self._thread.start()

    def reload(self) -> None:
        self._reload.set()
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._backend.release_thread_store()

    def _loop(self) -> None:
        seen: int | None = None
        pause = POLL_INTERVAL_S
        while not self._stopping.is_set():
            try:
                store = self._backend.store
                self._backend.settle_confirmations(self._hub)
                version = store.data_version()
                if version != seen or self._reload.is_set():
                    self._reload.clear()
                    seen = version
                    started = time.monotonic()
                    self._previous = share_unchanged(self._previous, store.cluster())
                    pause = max(POLL_INTERVAL_S, 2 * (time.monotonic() - started))
                    self._hub.publish(ClusterChanged(cluster=self._previous))
                    rows = store.log_lines_after(self._last_log_id, LOG_LINES_KEPT)
                    if rows:
                        self._last_log_id = rows[-1].id
                        self._hub.publish(LogRows(tuple(rows)))
            except (LkError, sqlite3.Error) as exc:
                log.warning("cannot read the cluster: %s", exc)
                self._hub.publish(WatchFailed(str(exc)))
            self._wake.wait(pause)
            self._wake.clear()
