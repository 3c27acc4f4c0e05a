"""Core operations off the GUI thread: a QRunnable on the global QThreadPool.

:class:`OperationWorker` runs a plain callable (a core operation knows nothing of Qt).
The callable gets a :class:`Reporter` whose ``progress`` and ``log`` methods are plain
callbacks it can hand on to core; they emit :class:`WorkerSignals`, which were created
in the GUI thread, so their slots run there (queued). A failure that core raises on
purpose (:class:`~core.errors.LkError`) is a result, not a crash: ``finished(False,
message)``. Anything else is a bug: it is logged with its traceback and reported too,
so the console never waits for ever.

:class:`OperationRunner` starts workers and tells the window whether any is running
(for the busy indicator)::

    runner.start("extend", lambda report: extend(request, on_log=report.log))
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from core.errors import LkError

log = logging.getLogger(__name__)


class WorkerSignals(QObject):
    """What a worker reports (QRunnable is not a QObject)."""

    started = Signal()
    progress = Signal(int, int)  # done, total
    log = Signal(str, str)  # level ("INFO", "WARNING", "ERROR"), text
    finished = Signal(bool, str)  # ok, message (always emitted last, exactly once)
    failed = Signal(str)  # message, before finished(False, message)
    returned = Signal(object)  # the callable's result, before finished(True, ...)


class Reporter:
    """Plain callbacks for the work: ``progress(done, total)``, ``log(level, text)``."""

    def __init__(self, signals: WorkerSignals, cancel: threading.Event) -> None:
        self._signals = signals
        self.cancelled = cancel

    def progress(self, done: int, total: int) -> None:
        self._signals.progress.emit(int(done), int(total))

    def log(self, level: str, text: str) -> None:
        self._signals.log.emit(level, text)

    def info(self, text: str) -> None:
        self.log("INFO", text)


Work = Callable[[Reporter], Any]


class OperationWorker(QRunnable):
    """Runs ``work(reporter)`` once on a pool thread. Create it in the GUI thread."""

    def __init__(self, operation: str, work: Work, success: str | None = None) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the runner keeps it until finished is delivered
        self.operation = operation
        self.signals = WorkerSignals()
        self.signals.setObjectName(f"worker_{operation}")
        self._work = work
        self._success = success
        self._cancel = threading.Event()
        self.reporter = Reporter(self.signals, self._cancel)

    def cancel(self) -> None:
        """Ask the work to stop (it checks ``reporter.cancelled``)."""
        self._cancel.set()

    def run(self) -> None:
        self.signals.started.emit()
        try:
            result = self._work(self.reporter)
        except LkError as exc:
            message = f"{self.operation} failed: {exc}"
            self.signals.failed.emit(message)
            self.signals.finished.emit(False, message)
            return
        except Exception as exc:  # a bug: say so, and keep the console usable
            log.exception("%s: unexpected error", self.operation)
            message = f"{self.operation} failed with an unexpected error (a bug): {exc!r}"
            self.signals.failed.emit(message)
            self.signals.finished.emit(False, message)
            return
        self.signals.returned.emit(result)
        if isinstance(result, str) and result:
            message = result
        else:
            message = self._success or f"{self.operation} finished."
        self.signals.finished.emit(True, message)


class OperationRunner(QObject):
    """Starts workers on the global pool; :attr:`busy_changed` while any runs."""

    busy_changed = Signal(bool)
    started = Signal(object)  # OperationWorker
    finished = Signal(str, bool, str)  # operation, ok, message

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("operation_runner")
        self._pool = pool or QThreadPool.globalInstance()
        self._running: set[OperationWorker] = set()
        self._slots: dict[OperationWorker, Callable[[bool, str], None]] = {}

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def running(self) -> list[OperationWorker]:
        return list(self._running)

    def start(
        self,
        operation: str,
        work: Work,
        success: str | None = None,
        prepare: Callable[[OperationWorker], object] | None = None,
    ) -> OperationWorker:
        """Run ``work(reporter)`` on a pool thread; returns the worker.

        ``prepare(worker)`` runs before the worker starts: connect to its signals there,
        so that nothing it reports is missed.
        """
        worker = OperationWorker(operation, work, success)
        if prepare is not None:
            prepare(worker)
        done = self._done_slot(worker)
        worker.signals.finished.connect(done)
        self._slots[worker] = done
        was_busy = self.busy
        self._running.add(worker)
        self.started.emit(worker)
        if not was_busy:
            self.busy_changed.emit(True)
        self._pool.start(worker)
        return worker

    def _done_slot(self, worker: OperationWorker) -> Callable[[bool, str], None]:
        def done(ok: bool, message: str) -> None:
            self._done(worker, ok, message)

        return done

    def _done(self, worker: OperationWorker, ok: bool, message: str) -> None:
        self._running.discard(worker)
        # Drop the slot that holds the worker (a cycle Python's GC cannot see).
        worker.signals.finished.disconnect(self._slots.pop(worker))
        self.finished.emit(worker.operation, ok, message)
        if not self._running:
            self.busy_changed.emit(False)

    def wait(self, msecs: int = 30_000) -> bool:
        """Wait for every worker (at exit)."""
        return self._pool.waitForDone(msecs)
