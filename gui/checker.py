"""Checks that need the cluster's disks, run off the GUI thread: the newest one wins.

A wizard page that checks a field against a server's disks (is the bitmap location on
btrfs, writable...) asks a :class:`LatestOnly` to run the probing part on the thread
pool; when the user types again before it answers, the older answer is dropped and only
the newest request's answer reaches the page.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QThreadPool, Signal

from gui.jobs import Job, JobSignals


class LatestOnly(QObject):
    """Run ``work()`` on the thread pool; deliver only the newest request's answer."""

    answered = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._generation = 0
        self._running: set[Job] = set()

    @property
    def busy(self) -> bool:
        """A request is on its way (the page is not complete meanwhile)."""
        return bool(self._running)

    def submit(self, work: Callable[[], object]) -> None:
        self._generation += 1
        generation = self._generation

        def run(_signals: JobSignals) -> object:
            return work()

        job = Job(run)
        self._running.add(job)
        job.signals.result.connect(lambda value: self._deliver(job, generation, value))
        job.signals.failed.connect(lambda message: self._fail(job, generation, message))
        QThreadPool.globalInstance().start(job)

    def _deliver(self, job: Job, generation: int, value: object) -> None:
        self._running.discard(job)
        if generation == self._generation:
            self.answered.emit(value)

    def _fail(self, job: Job, generation: int, message: str) -> None:
        self._running.discard(job)
        if generation == self._generation:
            self.failed.emit(message)
