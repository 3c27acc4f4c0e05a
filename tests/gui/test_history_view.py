"""View › History."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QLabel, QLineEdit, QPlainTextEdit, QTableView

from gui.actions import find_menu_action
from gui.main_window import MainWindow
from tests.helpers import run_lkctl


def test_history_lists_filters_and_shows_steps(qtbot, hermetic_env: Path) -> None:
    assert run_lkctl(["extend", "/data", "--accept-defaults"]).returncode == 0
    assert run_lkctl(["mirror", "pause", "datarep-data"]).returncode == 0
    assert run_lkctl(["--user", "nobody", "status"], env={"LKCTL_PASSWORD": "x"}).returncode == 1
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.cluster is not None, timeout=10_000)
    action = find_menu_action(window.menuBar(), "View", "History")
    assert action is not None
    action.trigger()
    dialog = window.history_dialog
    table = dialog.findChild(QTableView, "history_table")
    # The failed sign-in of "nobody" is recorded too, as a refusal.
    qtbot.waitUntil(lambda: table.model().rowCount() == 3, timeout=10_000)
    model = table.model()
    operations = {model.index(r, 3).data() for r in range(3)}
    assert operations == {
        "extend /data to lab2",
        "pause mirror datarep-data",
        "sign in for Viewing the cluster",
    }
    names = [model.index(r, 3).data() for r in range(3)]
    assert model.index(names.index("extend /data to lab2"), 4).data() == "ok"
    assert model.index(names.index("sign in for Viewing the cluster"), 4).data() == "FAILED"
    table.selectRow(names.index("extend /data to lab2"))
    steps = dialog.findChild(QPlainTextEdit, "history_steps").toPlainText()
    assert "$ lkctl extend /data --template lab1 --target lab2" in steps
    assert "[1/5] Create DataKeeper resource datarep-data on lab2" in steps
    dialog.findChild(QLineEdit, "history_filter").setText("pause")
    assert model.rowCount() == 1
    assert dialog.findChild(QLabel, "history_count").text() == "1 of 3 operations"
    table.sortByColumn(0, table.horizontalHeader().sortIndicatorOrder())
    dialog.close()
