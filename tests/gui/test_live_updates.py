"""The window follows a resync, core events, and log lines live, and stays usable."""

from __future__ import annotations

import threading
import time

from PySide6.QtWidgets import QApplication, QLineEdit, QProgressBar

from core.backends.lab.layout import SEED_VOLUME_SIZE
from core.backends.lab.store import Store
from core.events import EventHub, LogLine, MirrorProgress, OperationFinished
from core.model import MirrorState
from gui.main_window import MainWindow
from gui.output_panel import format_line
from tests.gui import clusters as c
from tests.gui.lab_states import ResyncDriver, extend_seed, seed, set_progress


def _window(qtbot, hub: EventHub | None = None) -> MainWindow:
    window = MainWindow(hub=hub)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)
    return window


def _texts_of(window: MainWindow, tag: str, server: str) -> list[str]:
    """Every text the cell (tag on server) shows from now on."""
    seen: list[str] = []
    model = window.model

    def changed(a, b, roles=()) -> None:
        cell = model.index_of(tag, server)
        inside = a.row() <= cell.row() <= b.row() and a.column() <= cell.column() <= b.column()
        if inside and a.internalPointer() is cell.internalPointer():
            seen.append(cell.data())

    model.dataChanged.connect(changed)
    return seen


def test_resync_of_a_small_volume_updates_the_cell_until_target(qtbot) -> None:
    """Driven through the store, as the replication engine writes it.

    To switch to the real engine: replace ResyncDriver by extending the seed with
    core.extend (which starts core.backends.lab.resyncd) and keep the assertions.
    """
    window = _window(qtbot)
    percents = (25, 50, 75)
    driver = ResyncDriver([c.part(SEED_VOLUME_SIZE, p) for p in percents])
    driver.start()
    ids = driver.wait_ready()
    qtbot.waitUntil(
        lambda: window.model.index_of("datarep-data", "lab2").data() == "Resyncing 0 %",
        timeout=5_000,
    )
    seen = _texts_of(window, "datarep-data", "lab2")
    window.tree.select_resource(ids.hierarchy_id, ids.dk_id, "lab2")
    bar = window.findChild(QProgressBar, "resync_progress")
    for percent in percents:
        driver.go()
        qtbot.waitUntil(
            lambda p=percent: (
                window.model.index_of("datarep-data", "lab2")
                .data()
                .startswith(f"Resyncing {p} % · 180 MB/s")
            ),
            timeout=5_000,
        )
        assert bar.isVisible() and bar.value() == percent
        assert window.properties_panel.rows()["Progress"].startswith(f"{percent} %")
    driver.go()
    qtbot.waitUntil(
        lambda: window.model.index_of("datarep-data", "lab2").data() == "Target", timeout=5_000
    )
    driver.join(10)
    assert driver.error is None
    assert [t.split(" · ")[0] for t in seen] == [
        "Resyncing 25 %",
        "Resyncing 50 %",
        "Resyncing 75 %",
        "Target",
    ]
    assert not bar.isVisible()
    assert window.properties_panel.rows()["Sync state"] == "Target"
    assert window.model.index_of("/data", "lab2").data() == "Standby"
    qtbot.waitUntil(
        lambda: any("in sync (Target)" in line for line in window.output_panel.lines()),
        timeout=5_000,
    )


def test_progress_events_are_coalesced_per_cell(qtbot) -> None:
    hub = EventHub()
    window = _window(qtbot, hub)
    with Store() as store:
        extend_seed(store, "lab2")
    qtbot.waitUntil(
        lambda: window.model.index_of("datarep-data", "lab2").data() == "Resyncing 0 %",
        timeout=5_000,
    )
    seen = _texts_of(window, "datarep-data", "lab2")
    total = SEED_VOLUME_SIZE
    start = time.monotonic()

    def resync() -> None:  # a fast engine: 4000 progress events as fast as it can
        for i in range(1, 4001):
            hub.publish(MirrorProgress("datarep-data", "lab2", total * i // 4000, total, 5e8, 1))

    thread = threading.Thread(target=resync)
    thread.start()
    thread.join()
    qtbot.waitUntil(
        lambda: window.model.index_of("datarep-data", "lab2").data().startswith("Resyncing 100 %"),
        timeout=5_000,
    )
    elapsed = time.monotonic() - start
    assert 1 <= len(seen) <= elapsed * 10 + 2, (len(seen), elapsed)


def test_log_lines_show_live_once_and_survive_a_restart(qtbot) -> None:
    hub = EventHub()
    window = _window(qtbot, hub)
    hub.publish(LogLine("extend", "INFO", "Creating datarep-data on lab2"))
    qtbot.waitUntil(
        lambda: any("Creating datarep-data on lab2" in x for x in window.output_panel.lines()),
        timeout=5_000,
    )
    with Store() as store, store.transaction() as txn:  # what core.backends.lab.oplog stores
        txn.add_log_line("extend", "INFO", "Creating datarep-data on lab2")
        txn.add_log_line("extend", "ERROR", "lab2: no space left on the device")
    hub.publish(OperationFinished("extend", False, "extend failed: no space left"))
    qtbot.waitUntil(lambda: any("no space left on" in x for x in window.output_panel.lines()))
    qtbot.waitUntil(lambda: window.message.text() == "extend failed: no space left")
    lines = window.output_panel.lines()
    assert sum("Creating datarep-data on lab2" in x for x in lines) == 1
    error = next(x for x in lines if "no space left on" in x)
    assert "ERROR" in error and "extend" in error
    assert error.endswith(
        format_line(0, "extend", "ERROR", "lab2: no space left on the device")[19:]
    )
    window.close()

    again = _window(qtbot)
    qtbot.waitUntil(lambda: len(again.output_panel.lines()) >= 3, timeout=5_000)
    lines = again.output_panel.lines()
    assert "Created the lab cluster" in lines[0]
    assert "Creating datarep-data on lab2" in lines[1]
    assert "no space left on the device" in lines[2]


def test_the_output_can_be_copied(qtbot) -> None:
    window = _window(qtbot)
    qtbot.waitUntil(lambda: bool(window.output_panel.lines()), timeout=5_000)
    window.output_panel.copy_all_action.trigger()
    copied = QApplication.clipboard().text()
    assert "INFO" in copied and "Created the lab cluster: servers lab1, lab2, lab3" in copied
    assert copied[:4].isdigit()  # the time first
    window.output_panel.text.selectAll()
    window.output_panel.text.copy()
    assert QApplication.clipboard().text() == copied
    window.output_panel.clear_action.trigger()
    assert window.output_panel.lines() == []


def test_the_tag_filter_hides_other_hierarchies_without_a_reset(qtbot) -> None:
    window = _window(qtbot)
    resets: list[str] = []
    window.model.modelReset.connect(lambda: resets.append("source"))
    box = window.findChild(QLineEdit, "tag_filter")
    box.setText("datarep")
    assert window.proxy.rowCount() == 1  # /data stays: its child matches
    assert window.tree.isExpanded(window.proxy.index(0, 0))
    box.setText("nothing-like-this")
    assert window.proxy.rowCount() == 0
    with Store() as store:
        extend_seed(store, "lab2", state=MirrorState.TARGET)
    qtbot.waitUntil(
        lambda: window.model.index_of("datarep-data", "lab2").data() == "Target", timeout=5_000
    )
    box.clear()
    assert window.proxy.rowCount() == 1
    assert resets == []
    window.actions["find_tag"].trigger()
    assert box.hasFocus() or QApplication.focusWidget() is box or not window.isActiveWindow()


def test_selection_survives_updates(qtbot) -> None:
    server = "lab2"
    window = _window(qtbot)
    with Store() as store:
        ids = extend_seed(store, server)
    qtbot.waitUntil(lambda: window.model.index_of("datarep-data", server).data() is not None)
    window.tree.select_resource(ids.hierarchy_id, ids.dk_id, server)
    before = window.selection()
    with Store() as store:
        set_progress(store, seed(store).dk_id, server, SEED_VOLUME_SIZE // 2)
    qtbot.waitUntil(
        lambda: window.model.index_of("datarep-data", server).data().startswith("Resyncing 50"),
        timeout=5_000,
    )
    assert window.selection() == before
    assert window.properties_panel.heading.text() == f"datarep-data on {server}"
