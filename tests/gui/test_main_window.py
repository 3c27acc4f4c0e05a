"""The main window over the real lab store, and the lkconsole entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QDockWidget, QLabel, QPushButton, QToolBar, QTreeView

from core import connection
from core.backends.lab.store import Store
from core.events import EventHub, ResourceStateChanged
from core.model import ResourceState, ServerState
from gui.bridge import read_initial_state
from gui.main_window import MainWindow
from gui.status_model import StatusModel
from tests.gui.lab_states import seed
from tests.helpers import REPO

H = Qt.Orientation.Horizontal


def _window(qtbot, hub: EventHub | None = None) -> MainWindow:
    window = MainWindow(hub=hub)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)
    return window


def _changes(model: StatusModel) -> list[tuple[int, int, str | None]]:
    """(row, column, text) of every cell the model reports changed, and resets."""
    seen: list[tuple[int, int, str | None]] = []
    model.dataChanged.connect(lambda a, b, roles=(): seen.append((a.row(), a.column(), a.data())))
    model.modelReset.connect(lambda: seen.append((-1, -1, "reset")))
    model.rowsRemoved.connect(lambda *a: seen.append((-1, -1, "removed")))
    model.rowsInserted.connect(lambda *a: seen.append((-1, -1, "inserted")))
    return seen


DROP_WITHOUT_CLOSING = """
import gc
from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
import threading
from gui.main_window import MainWindow
window = MainWindow()
loop = QEventLoop()
window.cluster_shown.connect(loop.quit)
QTimer.singleShot(10_000, loop.quit)
loop.exec()
loop.processEvents()
watching = [t for t in threading.enumerate() if t.name == "lab_watch"]
assert len(watching) == 1 and watching[0].is_alive()
del window  # garbage-collected, never closed: must not abort the process
gc.collect()
watching[0].join(5)
print("thread finished:", not watching[0].is_alive())
"""


def test_a_window_dropped_without_closing_ends_its_thread(tmp_path: Path) -> None:
    # In a process of its own: a full collection here would also collect what earlier
    # tests left behind, and PySide does not always survive that (a Qt, not an app, issue).
    done = subprocess.run(
        [sys.executable, "-c", DROP_WITHOUT_CLOSING],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert done.returncode == 0, done.stderr
    assert "thread finished: True" in done.stdout
    assert "QThread: Destroyed while thread" not in done.stderr


def test_window_shows_the_lab_cells(qtbot) -> None:
    window = _window(qtbot)
    tree = window.findChild(QTreeView, "status_tree")
    assert tree is not None and tree.model().sourceModel() is window.model
    model = window.model
    assert [model.headerData(c, H) for c in range(1, 4)] == [
        "lab1 — ALIVE",
        "lab2 — ALIVE",
        "lab3 — ALIVE",
    ]
    root = tree.model().index(0, 0)
    assert root.data() == "/data"
    assert tree.model().index(0, 1).data() == "Active"
    assert tree.model().index(0, 2).data() is None
    assert tree.model().index(0, 3).data() is None
    assert tree.model().index(0, 1, root).data() == "Active"
    assert tree.model().index(0, 0, root).data() == "datarep-data"
    assert tree.isExpanded(root)
    assert not tree.model().index(0, 1).data(Qt.ItemDataRole.DecorationRole).isNull()
    assert not root.data(Qt.ItemDataRole.DecorationRole).isNull()  # node status icon
    message = window.findChild(QLabel, "message_bar")
    assert message is not None and "3 of 3 servers alive" in message.text()
    connection = window.findChild(QLabel, "connection_label")
    assert connection is not None and connection.text() == "Lab cluster · Administrator"


def test_the_first_paint_already_shows_the_cluster(qtbot) -> None:
    # What lkconsole does: read the cluster before the window, so no "Connecting…" frame.
    backend = connection.open()
    initial = read_initial_state(backend)
    window = MainWindow(backend=backend, initial=initial)
    qtbot.addWidget(window)
    seen = _changes(window.model)
    proxy = window.tree.model()
    assert proxy.index(0, 0).data() == "/data"
    assert proxy.index(0, 1).data() == "Active"
    assert window.tree.empty_text == ""
    lines = window.output_panel.lines()
    assert len(lines) == 1 and "Created the lab cluster" in lines[0]
    window.show()
    # The watcher's first snapshot is the same cluster: no cell changes, no reset, and
    # the log lines already shown are not shown twice.
    with qtbot.waitSignal(window.cluster_shown, timeout=10_000):
        pass
    assert seen == []
    assert window.output_panel.lines() == lines
    with Store() as other, other.transaction() as txn:
        txn.add_log_line("lkctl", "INFO", "a newer line")
    window.request_reload()
    qtbot.waitUntil(lambda: len(window.output_panel.lines()) == 2, timeout=10_000)
    assert "a newer line" in window.output_panel.lines()[1]


def test_a_change_by_another_process_reaches_its_cell_only(qtbot) -> None:
    window = _window(qtbot)
    seen = _changes(window.model)
    other = Store()  # another console or lkctl
    ids = seed(other)
    with other.transaction() as txn:
        txn.set_instance_state(ids.dk_id, "lab1", ResourceState.OSF)
    dk = window.model.index_of("datarep-data", "lab1")
    qtbot.waitUntil(lambda: dk.data() == "Failed", timeout=5_000)
    assert [x for x in seen if x[1] > 0] == [(0, 1, "Failed")]  # no other cell, no reset
    assert all(x[2] not in ("reset", "removed", "inserted") for x in seen)
    assert window.model.index_of("/data", "lab1").data() == "Active"
    other.close()


def test_a_server_state_change_shows_in_its_header(qtbot) -> None:
    window = _window(qtbot)
    other = Store()
    with other.transaction() as txn:
        txn.set_server_state("lab2", ServerState.DEAD)
    qtbot.waitUntil(lambda: window.model.headerData(2, H) == "lab2 — DEAD", timeout=5_000)
    # The connection's summary in the message bar follows, until another result comes.
    message = window.findChild(QLabel, "message_bar")
    assert "2 of 3 servers alive" in message.text()
    window.show_result("Switchover done.")
    with other.transaction() as txn:
        txn.set_server_state("lab2", ServerState.ALIVE)
    qtbot.waitUntil(lambda: window.model.headerData(2, H) == "lab2 — ALIVE", timeout=5_000)
    assert message.text() == "Switchover done."
    other.close()


def test_a_core_event_from_a_worker_thread_reaches_its_cell(qtbot) -> None:
    """An operation writes the store and publishes the event from its own thread."""
    hub = EventHub()
    window = _window(qtbot, hub)
    seen = _changes(window.model)

    def operation() -> None:
        with Store() as store:
            ids = seed(store)
            with store.transaction() as txn:
                txn.set_instance_state(ids.root_id, "lab1", ResourceState.ISU)
            hub.publish(ResourceStateChanged(ids.root_id, "lab1", "ISU"))

    thread = threading.Thread(target=operation)
    thread.start()
    cell = window.model.index_of("/data", "lab1")
    qtbot.waitUntil(lambda: cell.data() == "Degraded", timeout=5_000)
    thread.join()
    assert [x for x in seen if x[1] > 0] == [(0, 1, "Degraded")]


def test_geometry_is_saved_and_restored(qtbot) -> None:
    window = _window(qtbot)
    window.resize(700, 450)
    window.close()
    again = _window(qtbot)
    assert again.size() == QSize(700, 450)


def test_dock_layout_is_saved_and_restored(qtbot) -> None:
    window = _window(qtbot)
    output = window.findChild(QDockWidget, "output_panel")
    props = window.findChild(QDockWidget, "properties_panel")
    assert window.dockWidgetArea(output) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert window.dockWidgetArea(props) == Qt.DockWidgetArea.RightDockWidgetArea
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, output)
    props.hide()
    window.findChild(QToolBar, "main_toolbar").hide()
    window.close()

    again = _window(qtbot)
    output = again.findChild(QDockWidget, "output_panel")
    props = again.findChild(QDockWidget, "properties_panel")
    assert again.dockWidgetArea(output) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert output.isVisible() and not props.isVisible()
    assert not again.findChild(QToolBar, "main_toolbar").isVisible()
    assert not again.actions["toggle_properties_panel"].isChecked()


def test_column_widths_and_sorting_are_saved_and_restored(qtbot) -> None:
    window = _window(qtbot)
    window.tree.setColumnWidth(1, 333)
    window.tree.sort_by(0, Qt.SortOrder.DescendingOrder)
    window.close()
    again = _window(qtbot)
    assert again.tree.columnWidth(1) == 333
    assert again.tree.sort_state == (0, Qt.SortOrder.DescendingOrder)


def test_disconnect_and_connect(qtbot) -> None:
    window = _window(qtbot)
    window.actions["disconnect"].trigger()
    assert window.model.rowCount() == 0
    assert window.findChild(QLabel, "connection_label").text() == "Not connected"
    assert not window.actions["disconnect"].isEnabled()
    assert window.actions["connect"].isEnabled()
    assert "File › Connect" in window.actions["create_hierarchy"].toolTip()
    window.actions["connect"].trigger()
    dialog = window.operations.last_dialog  # File › Connect: the owner needs no password
    assert dialog.objectName() == "connect_dialog"
    dialog.findChild(QPushButton, "connect_ok").click()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)
    assert window.findChild(QLabel, "connection_label").text() == "Lab cluster · Administrator"
    assert not window.actions["connect"].isEnabled()


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


AFTER_START = """
import gc, sys
import gui.app

def painted_then_quit(app, window):
    print("rows", window.model.rowCount(), "gc enabled", gc.isenabled(),
          "frozen", gc.get_freeze_count() > 0)
    app.quit()

gui.app._painted_then_quit = painted_then_quit
sys.exit(gui.app.main(["--exit-when-shown"]))
"""


def test_lkconsole_collects_garbage_again_once_shown() -> None:
    # The collector is off during the start-up only (gui/app.py); once the window has
    # painted, collections are back, and what the start-up made is frozen out of them.
    done = subprocess.run(
        [sys.executable, "-c", AFTER_START],
        cwd=REPO,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "rows 1 gc enabled True frozen True" in done.stdout
