"""Core → Qt: the cluster state and core events delivered to the GUI thread as signals.

Two sources, one place where they reach the GUI:

- :class:`ClusterWatcher` runs a thread with its own store connection (an SQLite
  connection belongs to one thread). It loads the cluster, then polls the store's
  ``data_version`` (a cheap pragma that changes when any process commits) and reloads
  the snapshot only when something changed, or when asked
  (:meth:`ClusterWatcher.request_reload`, after this process changed the store). A new
  snapshot shares every hierarchy that did not change with the previous one (the same
  object), so the GUI finds what changed by identity, in microseconds. It also reads
  the output panel's new lines (:meth:`core.backends.lab.store.Store.log_lines_after`).
- :class:`EventBridge` subscribes to an in-process :class:`core.events.EventHub`. Its
  subscriber runs in the publisher's thread and only queues the event; the GUI thread
  gets them in batches (:attr:`EventBridge.batch`), at most :data:`FLUSH_INTERVAL_MS`
  apart, with mirror progress coalesced to the latest value per target. Snapshots from
  the watcher go through the same throttle (:meth:`EventBridge.offer_cluster`), so a
  cell changes at most ten times a second whatever the sources.

The watcher thread is a plain Python loop, not an event loop: no QObject lives in it, so
nothing has to be deleted across threads.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from core.errors import LkError
from core.events import (
    ClusterChanged,
    Event,
    EventHub,
    LogLine,
    MirrorProgress,
    MirrorStateChanged,
    OperationFinished,
    ResourceStateChanged,
    ServerStateChanged,
)
from core.backends.lab.layout import ensure_lab
from core.model import Cluster
from core.backends.lab.store import LogRow, Store

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25
FLUSH_INTERVAL_MS = 100  # at most ten updates a second per cell
LOG_LINES_KEPT = 2000  # output-panel lines read at start (the store keeps as many)


def share_unchanged(previous: Cluster | None, current: Cluster) -> Cluster:
    """``current``, reusing the hierarchy objects of ``previous`` that are equal."""
    if previous is None:
        return current
    old = {h.id: h for h in previous.hierarchies}
    hierarchies = tuple(
        old_h if (old_h := old.get(h.id)) is not None and old_h == h else h
        for h in current.hierarchies
    )
    servers = previous.servers if previous.servers == current.servers else current.servers
    return replace(current, servers=servers, hierarchies=hierarchies)


@dataclass(frozen=True)
class InitialState:
    """What the window shows on its first paint, read before it is built."""

    cluster: Cluster
    log_rows: list[LogRow]


def read_initial_state(home: Path | None = None) -> InitialState:
    """Open (on first use create) the lab and read the cluster and the output panel's
    last lines, in the calling thread: the console does it once, before its window
    exists, so that the first paint already shows the cluster."""
    with Store(home) as store:
        ensure_lab(store)
        return InitialState(store.cluster(), store.log_lines_after(0, LOG_LINES_KEPT))


class ClusterWatcher(QThread):
    """Emits :attr:`cluster_loaded` (a ``Cluster``) and :attr:`log_loaded` (LogRows).

    Given the :class:`InitialState` the window already shows, its first snapshot shares
    the hierarchies that did not change since, and it reads only newer log lines.
    """

    cluster_loaded = Signal(object)
    log_loaded = Signal(object)  # list[core.backends.lab.store.LogRow], oldest first
    failed = Signal(str)

    def __init__(self, home: Path | None = None, shown: InitialState | None = None) -> None:
        # No Qt parent on purpose: Qt aborts when a running thread is destroyed, so the
        # thread must not die with its window; the window stops it instead (see watch()).
        super().__init__()
        self.setObjectName("cluster_watcher")
        self._home = home
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._reload = threading.Event()
        self._shown = shown

    def watch_for(self, owner: object) -> None:
        """Start, and stop when ``owner`` is closed or garbage-collected (not at all
        when it was stopped already)."""
        if self._stopping.is_set():
            return
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
            store = Store(self._home)
        except LkError as exc:
            self.failed.emit(str(exc))
            return
        try:
            ensure_lab(store)
            self._loop(store)
        except LkError as exc:
            self.failed.emit(str(exc))
        finally:
            store.close()

    def _loop(self, store: Store) -> None:
        seen: int | None = None
        shown, self._shown = self._shown, None
        previous = shown.cluster if shown is not None else None
        last_log_id = shown.log_rows[-1].id if shown is not None and shown.log_rows else 0
        pause = POLL_INTERVAL_S
        while not self._stopping.is_set():
            try:
                version = store.data_version()
                if version != seen or self._reload.is_set():
                    self._reload.clear()
                    seen = version
                    started = time.monotonic()
                    previous = share_unchanged(previous, store.cluster())
                    # A big cluster takes a while to read: read it at most a third of the
                    # time, so that the GUI thread keeps the interpreter most of the time.
                    pause = max(POLL_INTERVAL_S, 2 * (time.monotonic() - started))
                    self.cluster_loaded.emit(previous)
                    rows: list[LogRow] = store.log_lines_after(last_log_id, LOG_LINES_KEPT)
                    if rows:
                        last_log_id = rows[-1].id
                        self.log_loaded.emit(rows)
            except (LkError, sqlite3.Error) as exc:
                log.warning("cannot read the cluster: %s", exc)
                self.failed.emit(str(exc))
            self._wake.wait(pause)
            self._wake.clear()


@dataclass
class EventBatch:
    """What reached the GUI thread since the last flush, coalesced."""

    cluster: Cluster | None = None  # the latest snapshot, if a new one came
    progress: dict[tuple[str, str], MirrorProgress] = field(default_factory=dict)
    log_lines: list[LogLine] = field(default_factory=list)
    finished: list[OperationFinished] = field(default_factory=list)
    reload: bool = False  # the store changed: ask the watcher for a snapshot now
    events: int = 0  # how many hub events this batch stands for

    def __bool__(self) -> bool:
        return bool(
            self.cluster is not None
            or self.progress
            or self.log_lines
            or self.finished
            or self.reload
        )


class EventBridge(QObject):
    """Hub events and snapshots → :attr:`batch` on the GUI thread, ≤ 10 per second."""

    batch = Signal(object)  # EventBatch
    _wake = Signal()  # emitted from any thread, queued to the bridge's (GUI) thread

    def __init__(
        self,
        hub: EventHub | None,
        parent: QObject | None = None,
        interval_ms: int = FLUSH_INTERVAL_MS,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("event_bridge")
        self._interval_ms = interval_ms
        self._lock = threading.Lock()
        self._pending = EventBatch()
        self._scheduled = False
        self._closed = False
        self._last_flush = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self.flush)
        self._wake.connect(self._schedule)
        self._unsubscribe = hub.subscribe(self._on_event) if hub is not None else None

    # -- any thread -----------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        """The hub's subscriber: runs in the publisher's thread, never blocks."""
        with self._lock:
            if self._closed:
                return
            p = self._pending
            p.events += 1
            if isinstance(event, MirrorProgress):
                p.progress[(event.mirror, event.target)] = event
            elif isinstance(event, LogLine):
                p.log_lines.append(event)
            elif isinstance(event, OperationFinished):
                p.finished.append(event)
                p.reload = True
            elif isinstance(
                event,
                ClusterChanged | ResourceStateChanged | MirrorStateChanged | ServerStateChanged,
            ):
                # The store is the one source of truth: read it rather than patch cells.
                p.reload = True
            else:
                return
            wake = not self._scheduled
            self._scheduled = True
        if wake:
            try:
                self._wake.emit()
            except RuntimeError:  # the window (and this bridge's C++ side) is gone
                self.close()

    # -- GUI thread ------------------------------------------------------------------------
    def offer_cluster(self, cluster: Cluster) -> None:
        """A new snapshot: shown at the next flush (the latest one wins)."""
        with self._lock:
            self._pending.cluster = cluster
            wake = not self._scheduled
            self._scheduled = True
        if wake:
            self._schedule()

    @Slot()
    def _schedule(self) -> None:
        if self._timer.isActive():
            return
        elapsed_ms = (time.monotonic() - self._last_flush) * 1000
        self._timer.start(max(0, int(self._interval_ms - elapsed_ms)))

    @Slot()
    def flush(self) -> None:
        """Deliver what is pending now (tests and the throttle timer call this)."""
        with self._lock:
            pending, self._pending = self._pending, EventBatch()
            self._scheduled = False
        self._last_flush = time.monotonic()
        if pending:
            self.batch.emit(pending)

    def close(self) -> None:
        """Stop listening to the hub (idempotent)."""
        with self._lock:
            self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        with contextlib.suppress(RuntimeError):  # the C++ side may be gone already
            self._timer.stop()
