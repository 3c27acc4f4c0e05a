"""The main window over the real lab store, and the lkconsole entry point."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel, QTreeView

from core.model import ServerState
from core.store import Store
from gui.main_window import MainWindow
from tests.helpers import REPO


def _window(qtbot) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)
    return window


def test_a_window_dropped_without_closing_ends_its_thread(qtbot) -> None:
    window = MainWindow()
    with qtbot.waitSignal(window.cluster_shown, timeout=10_000):
        pass
    thread = window.watcher
    assert thread.isRunning()
    del window  # garbage-collected, never closed: must not abort the process
    gc.collect()
    assert thread.isFinished()


def test_window_shows_the_lab_cells(qtbot) -> None:
    window = _window(qtbot)
    tree = window.findChild(QTreeView, "status_tree")
    assert tree is not None and tree.model() is window.model
    model = window.model
    assert [model.headerData(c, _h()) for c in range(1, 4)] == [
        "lab1  (ALIVE)",
        "lab2  (ALIVE)",
        "lab3  (ALIVE)",
    ]
    root = model.index(0, 0)
    assert root.data() == "/data"
    assert model.index(0, 1).data() == "Active"
    assert model.index(0, 2).data() is None and model.index(0, 3).data() is None
    assert model.index(0, 1, root).data() == "Active"
    assert tree.isExpanded(root)
    assert not model.index(0, 1).data(1).isNull()  # an icon next to the text
    message = window.findChild(QLabel, "message_bar")
    assert message is not None and "3 of 3 servers alive" in message.text()


def test_window_follows_changes_made_by_another_process(qtbot) -> None:
    window = _window(qtbot)
    other = Store()  # another console or lkctl
    with other.transaction() as txn:
        txn.set_server_state("lab2", ServerState.DEAD)
    qtbot.waitUntil(lambda: window.model.headerData(2, _h()) == "lab2  (DEAD)", timeout=5_000)


def test_geometry_is_saved_and_restored(qtbot) -> None:
    window = _window(qtbot)
    window.resize(700, 450)
    window.close()
    again = _window(qtbot)
    assert again.size() == QSize(700, 450)


def test_no_display_is_a_clear_message_and_exit_2(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    done = subprocess.run(
        [sys.executable, "-m", "gui.app"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no display" in done.stderr
    assert "xvfb-run" in done.stderr and "lkctl" in done.stderr
    assert "Aborted" not in done.stderr


def test_screenshot_writes_the_window_as_png(tmp_path: Path) -> None:
    target = tmp_path / "shot.png"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run(
        [sys.executable, "-m", "gui.app", "--screenshot", str(target), "--size", "800x500"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    image = QImage(str(target))
    assert (image.width(), image.height()) == (800, 500)
    # Not blank: the status tree drew text and icons in several colours.
    colours = {image.pixel(x, y) for x in range(0, 800, 7) for y in range(0, 120, 3)}
    assert len(colours) > 10


def _h():
    from PySide6.QtCore import Qt

    return Qt.Orientation.Horizontal
