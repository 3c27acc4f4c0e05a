"""Core operations on worker threads: results, log lines, failures, the busy indicator."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication, QLabel, QProgressBar

from core.backends.lab.store import Store
from core.errors import OperationError
from gui.main_window import MainWindow
from gui.workers import OperationRunner, OperationWorker, Reporter


@pytest.fixture
def window(qtbot) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model.rowCount() == 1, timeout=10_000)
    return w


def test_a_worker_runs_off_the_gui_thread_and_reports(qtbot) -> None:
    runner = OperationRunner()
    threads: list[object] = []
    progress: list[tuple[int, int]] = []
    logs: list[tuple[str, str]] = []

    def work(report: Reporter) -> str:
        threads.append(QThread.currentThread())
        for i in range(3):
            report.progress(i + 1, 3)
            report.info(f"step {i + 1}")
        return "Counted to 3."

    def prepare(worker: OperationWorker) -> None:
        worker.signals.progress.connect(lambda d, t: progress.append((d, t)))
        worker.signals.log.connect(lambda level, text: logs.append((level, text)))

    busy: list[bool] = []
    runner.busy_changed.connect(busy.append)
    with qtbot.waitSignal(runner.finished, timeout=5_000) as done:
        runner.start("count", work, prepare=prepare)
    assert done.args == ["count", True, "Counted to 3."]
    assert busy == [True, False]
    assert threads and threads[0] is not QApplication.instance().thread()
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert logs[-1] == ("INFO", "step 3")
    assert not runner.busy


def test_a_core_failure_is_a_result_and_a_bug_is_reported(qtbot) -> None:
    runner = OperationRunner()

    def refused(report: Reporter) -> None:
        raise OperationError("lab2 is not reachable", step="Create datarep-data on lab2")

    with qtbot.waitSignal(runner.finished, timeout=5_000) as done:
        runner.start("extend", refused)
    assert done.args == [
        "extend",
        False,
        "extend failed: Create datarep-data on lab2: lab2 is not reachable",
    ]

    def bug(report: Reporter) -> None:
        raise ZeroDivisionError("oops")

    with qtbot.waitSignal(runner.finished, timeout=5_000) as done:
        runner.start("extend", bug)
    assert done.args[1] is False and "unexpected error (a bug)" in done.args[2]


def test_cancel_is_a_flag_the_work_reads(qtbot) -> None:
    started = threading.Event()

    def work(report: Reporter) -> str:
        started.set()
        assert report.cancelled.wait(10)
        return "Cancelled."

    worker = OperationWorker("wait", work)
    runner = OperationRunner()
    runner._pool.start(worker)
    assert started.wait(10)
    with qtbot.waitSignal(worker.signals.finished, timeout=5_000) as done:
        worker.cancel()
    assert done.args == [True, "Cancelled."]


def test_the_window_shows_a_busy_indicator_and_the_result(qtbot, window: MainWindow) -> None:
    """A real operation: it writes the store on its worker thread, the window follows."""
    release = threading.Event()
    busy = window.findChild(QProgressBar, "busy_indicator")
    assert busy is not None and not busy.isVisible()

    def rename_lab3(report: Reporter) -> str:
        report.info("waiting for the test")
        assert release.wait(10)
        with Store() as store, store.transaction() as txn:
            txn.add_log_line("test", "INFO", "wrote the store")
        report.progress(1, 1)
        return "The test operation finished."

    window.run_operation("test", rename_lab3)
    qtbot.waitUntil(busy.isVisible, timeout=5_000)
    qtbot.waitUntil(
        lambda: any("waiting for the test" in line for line in window.output_panel.lines()),
        timeout=5_000,
    )
    tree = window.tree
    tree.resize(tree.width() - 10, tree.height())  # the window stays responsive
    with qtbot.waitSignal(window.runner.finished, timeout=10_000):
        release.set()
    qtbot.waitUntil(lambda: not busy.isVisible(), timeout=5_000)
    message = window.findChild(QLabel, "message_bar")
    assert message.text() == "The test operation finished."
    qtbot.waitUntil(
        lambda: any("wrote the store" in line for line in window.output_panel.lines()),
        timeout=5_000,
    )
    assert sum("waiting for the test" in line for line in window.output_panel.lines()) == 1


def test_a_failed_operation_shows_its_message(qtbot, window: MainWindow) -> None:
    def fail(report: Reporter) -> None:
        raise OperationError("the target has no space left")

    with qtbot.waitSignal(window.runner.finished, timeout=5_000):
        window.run_operation("extend", fail)
    assert window.message.text() == "extend failed: the target has no space left"
