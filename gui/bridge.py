"""Core → Qt: the cluster state delivered to the GUI thread as signals.

:class:`ClusterWatcher` runs a thread with its own store connection (an SQLite
connection belongs to one thread). It loads the cluster, then polls the store's
``data_version`` (a cheap pragma that changes when any process commits) and reloads the
snapshot only when something changed, or when asked (:meth:`ClusterWatcher.request_reload`,
after this process changed the store). The snapshot, an immutable value, reaches the GUI
thread through a queued signal; the GUI thread never touches the database.

The thread is a plain Python loop, not an event loop: no QObject lives in it, so nothing
has to be deleted across threads.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from pathlib import Path

from PySide6.QtCore import QThread, Signal

from core.backend import LabBackend
from core.errors import LkError

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25


class ClusterWatcher(QThread):
    """Emits :attr:`cluster_loaded` (a ``core.model.Cluster``) on the GUI thread."""

    cluster_loaded = Signal(object)
    failed = Signal(str)

    def __init__(self, home: Path | None = None) -> None:
        # No Qt parent on purpose: Qt aborts when a running thread is destroyed, so the
        # thread must not die with its window; the window stops it instead (see watch()).
        super().__init__()
        self.setObjectName("cluster_watcher")
        self._home = home
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._reload = threading.Event()

    def watch_for(self, owner: object) -> None:
        """Start, and stop when ``owner`` is closed or garbage-collected."""
        weakref.finalize(owner, self.stop)
        self.start()

    def request_reload(self) -> None:
        """Reload now (after this process changed the store)."""
        self._reload.set()
        self._wake.set()

    def stop(self) -> None:
        """End the loop and wait for the thread (its store connection is closed there)."""
        self._stopping.set()
        self._wake.set()
        self.wait()

    def run(self) -> None:
        try:
            backend = LabBackend(self._home)
        except LkError as exc:
            self.failed.emit(str(exc))
            return
        try:
            self._loop(backend)
        finally:
            backend.close()

    def _loop(self, backend: LabBackend) -> None:
        seen: int | None = None
        while not self._stopping.is_set():
            try:
                version = backend.store.data_version()
                if version != seen or self._reload.is_set():
                    self._reload.clear()
                    seen = version
                    self.cluster_loaded.emit(backend.cluster())
            except (LkError, sqlite3.Error) as exc:
                log.warning("cannot read the cluster: %s", exc)
                self.failed.emit(str(exc))
            self._wake.wait(POLL_INTERVAL_S)
            self._wake.clear()
