"""Background jobs of the wizards and dialogs: a callable on the thread pool.

The callable (core work, no Qt) gets the job's :class:`JobSignals` to report steps and
log lines; its result, or the message of the LkError it raised, comes back to the GUI
thread through queued signals. :func:`start` keeps each job alive until it reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from core.errors import LkError

log = logging.getLogger(__name__)


class JobSignals(QObject):
    """What a background job reports (created in the GUI thread)."""

    result = Signal(object)  # whatever the job returns
    failed = Signal(str)
    step = Signal(int, int, str, str)  # index, total, title, status
    log = Signal(str, str)  # level, text


class Job(QRunnable):
    """Run ``work(signals)`` on the thread pool; its result or its LkError comes back."""

    def __init__(self, work: Callable[[JobSignals], object]) -> None:
        super().__init__()
        self.setAutoDelete(False)  # start() keeps it until it has reported
        self.signals = JobSignals()
        self._work = work

    def run(self) -> None:
        try:
            value = self._work(self.signals)
        except LkError as exc:
            self.signals.failed.emit(str(exc))
        except Exception as exc:  # a bug: report it, never leave the user waiting
            log.exception("background job failed")
            self.signals.failed.emit(f"unexpected error (a bug): {exc!r}")
        else:
            self.signals.result.emit(value)


def start(
    running: set[Job],
    work: Callable[[JobSignals], object],
    on_result: Callable[[object], None],
    on_failed: Callable[[str], None],
    on_step: Callable[[int, int, str, str], None] | None = None,
    on_log: Callable[[str, str], None] | None = None,
) -> Job:
    """Start ``work`` on the global pool; ``running`` holds the job until it reports."""
    job = Job(work)
    running.add(job)
    job.signals.result.connect(on_result)
    job.signals.failed.connect(on_failed)
    job.signals.result.connect(lambda _v, j=job: running.discard(j))
    job.signals.failed.connect(lambda _m, j=job: running.discard(j))
    if on_step is not None:
        job.signals.step.connect(on_step)
    if on_log is not None:
        job.signals.log.connect(on_log)
    QThreadPool.globalInstance().start(job)
    return job
