"""Core → Qt: the cluster state and core events delivered to the GUI thread as signals.

One hub, one place where everything reaches the GUI:

- the backend's watch (:meth:`core.backend.Backend.watch`) runs a thread of the backend's
  own and publishes :class:`~core.events.ClusterChanged` with each new snapshot (sharing
  every hierarchy that did not change with the previous one: the GUI finds what changed
  by identity, in microseconds) and :class:`~core.events.LogRows` with the output
  panel's new lines;
- operations publish their log lines, progress and results on the same hub.

:class:`EventBridge` subscribes to the hub. Its subscriber runs in the publisher's thread
and only queues the event; the GUI thread gets them in batches (:attr:`EventBridge.batch`),
at most :data:`FLUSH_INTERVAL_MS` apart, with mirror progress coalesced to the latest
value per target and only the latest snapshot kept, so a cell changes at most ten times
a second whatever the sources.

:class:`BackendOpener` opens a backend (``core.connection.open``) and reads its first
state on a worker, so that the GUI thread never waits for a cluster.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, Signal, SignalInstance, Slot

from core import connection
from core.backend import Backend
from core.errors import LkError, UnknownHostKey
from core.events import (
    ClusterChanged,
    Event,
    EventHub,
    LogLine,
    LogRows,
    MirrorProgress,
    MirrorStateChanged,
    OperationFinished,
    ResourceStateChanged,
    ServerStateChanged,
    WatchFailed,
)
from core.history import LogRow
from core.model import Cluster
from core.session import Session

log = logging.getLogger(__name__)

FLUSH_INTERVAL_MS = 100  # at most ten updates a second per cell
LOG_LINES_KEPT = 2000  # output-panel lines read at start (the lab keeps as many)


@dataclass(frozen=True)
class InitialState:
    """What the window shows on its first paint, read before it is built."""

    cluster: Cluster
    log_rows: list[LogRow]


def read_initial_state(backend: Backend) -> InitialState:
    """The cluster and the output panel's last lines, read in the calling thread: the
    console does it once, before its window exists, so that the first paint already
    shows the cluster (and a worker does it when a window connects later)."""
    return InitialState(backend.snapshot(), backend.log_lines(0, LOG_LINES_KEPT))


@dataclass(frozen=True)
class Opened:
    """A backend opened on a worker, with who the user is there and what it shows."""

    spec: str
    backend: Backend
    session: Session
    initial: InitialState


class _OpenSignals(QObject):
    opened = Signal(object)  # Opened
    failed = Signal(str)
    host_key = Signal(object)  # core.errors.UnknownHostKey: ask the user, then try again


class BackendOpener(QRunnable):
    """Open the cluster of ``spec`` on the thread pool; :attr:`signals` say how it went.

    ``sign_in(backend)`` (run on the worker too) gives the session; by default the
    backend's local user. Keep a reference until it reports (:meth:`start` does)."""

    def __init__(self, spec: str, sign_in: Callable[[Backend], Session] | None = None) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.spec = spec
        self.signals = _OpenSignals()
        self._sign_in = sign_in

    def start(self) -> BackendOpener:
        _OPENING.add(self)
        self.signals.opened.connect(lambda _o: _OPENING.discard(self))
        self.signals.failed.connect(lambda _m: _OPENING.discard(self))
        self.signals.host_key.connect(lambda _e: _OPENING.discard(self))
        QThreadPool.globalInstance().start(self)
        return self

    def run(self) -> None:
        try:
            backend = connection.open(self.spec)
        except UnknownHostKey as exc:
            self._report(self.signals.host_key, exc)
            return
        except LkError as exc:
            self._report(self.signals.failed, str(exc))
            return
        except Exception as exc:  # a bug: report it, never leave the window connecting
            log.exception("opening %s failed", self.spec)
            self._report(self.signals.failed, f"unexpected error (a bug): {exc!r}")
            return
        try:
            sign_in = self._sign_in
            session = sign_in(backend) if sign_in is not None else backend.local_session()
            initial = read_initial_state(backend)
        except Exception as exc:
            backend.close()
            if not isinstance(exc, LkError):
                log.exception("reading %s failed", self.spec)
            self._report(self.signals.failed, str(exc))
            return
        if not self._report(self.signals.opened, Opened(self.spec, backend, session, initial)):
            backend.close()  # nobody is left to use it

    def _report(self, signal: SignalInstance, value: object) -> bool:
        """Emit ``value``; False when the application is already gone (its window was
        closed and Qt deleted the signals' object while this was connecting)."""
        try:
            signal.emit(value)
        except RuntimeError:
            _OPENING.discard(self)
            return False
        return True


_OPENING: set[BackendOpener] = set()  # each until it reported (Qt must not own them)


_CLOSING: list[threading.Thread] = []


def close_in_background(backend: Backend) -> None:
    """Close a backend off the GUI thread (it may wait for its connections)."""
    thread = threading.Thread(target=backend.close, name="backend_close", daemon=True)
    _CLOSING.append(thread)
    thread.start()


def finish_background(timeout: float = 10.0) -> None:
    """Before the process exits: let the backends being closed finish closing."""
    while _CLOSING:
        _CLOSING.pop().join(timeout)


@dataclass
class EventBatch:
    """What reached the GUI thread since the last flush, coalesced."""

    cluster: Cluster | None = None  # the latest snapshot, if a new one came
    progress: dict[tuple[str, str], MirrorProgress] = field(default_factory=dict)
    log_lines: list[LogLine] = field(default_factory=list)
    log_rows: list[LogRow] = field(default_factory=list)  # kept by the backend
    finished: list[OperationFinished] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # the watch could not read
    reload: bool = False  # the cluster changed: ask the watch for a snapshot now
    events: int = 0  # how many hub events this batch stands for

    def __bool__(self) -> bool:
        return bool(
            self.cluster is not None
            or self.progress
            or self.log_lines
            or self.log_rows
            or self.finished
            or self.failures
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
            elif isinstance(event, ClusterChanged) and event.cluster is not None:
                p.cluster = event.cluster  # the latest snapshot wins
            elif isinstance(event, LogRows):
                p.log_rows.extend(event.rows)
            elif isinstance(event, WatchFailed):
                p.failures.append(event.message)
            elif isinstance(
                event,
                ClusterChanged | ResourceStateChanged | MirrorStateChanged | ServerStateChanged,
            ):
                # The backend is the one source of truth: read it rather than patch cells.
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
    def discard(self) -> None:
        """Forget what is pending (a watch that was stopped sent it)."""
        with self._lock:
            self._pending = EventBatch()

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
