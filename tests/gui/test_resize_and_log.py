"""Resize Mirror… (the mirror menu) and View › Log, driven through the menus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPlainTextEdit, QPushButton

from core.backends.lab import LabBackend
from core.model import MirrorState
from gui.actions import find_menu_action
from gui.log_view import LogDialog
from gui.main_window import MainWindow
from gui.resize_dialog import ResizeDialog
from tests.core.labtools import digest, wait_for_mirror
from tests.gui.windows import lab_window, lkctl_state, select
from tests.helpers import run_lkctl

MiB = 1024 * 1024
VOLUME = "/disks/datarep-data.img"


@pytest.fixture
def window(qtbot, hermetic_env: Path) -> Iterator[MainWindow]:
    yield lab_window(qtbot)


def _trigger(window: MainWindow, *menu: str) -> None:
    window.operations.last_dialog = None
    action = find_menu_action(window.menuBar(), *menu)
    assert action is not None and action.isEnabled(), action.toolTip() if action else menu
    action.trigger()


# -- Resize Mirror -----------------------------------------------------------------------------
def test_resize_refuses_a_smaller_size_under_its_field_then_grows_every_copy(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    assert run_lkctl(["extend", "/data", "--accept-defaults", "--wait"]).returncode == 0
    qtbot.waitUntil(
        lambda: window.model.index_of("datarep-data", "lab2").data() == "Target", timeout=20_000
    )
    select(window, "/data")
    action = find_menu_action(window.menuBar(), "Edit", "Resource", "Mirror", "Resize Mirror…")
    assert action is not None and not action.isEnabled()
    assert "not a DataKeeper resource" in action.toolTip()
    select(window, "datarep-data")
    _trigger(window, "Edit", "Resource", "Mirror", "Resize Mirror…")
    dialog = window.operations.last_dialog
    assert isinstance(dialog, ResizeDialog)
    size = dialog.findChild(QLineEdit, "size")
    error = dialog.findChild(QLabel, "size_error")
    ok = dialog.findChild(QPushButton, "operation_ok")
    assert size.text() == "64MiB"
    qtbot.waitUntil(lambda: error.isVisible(), timeout=10_000)
    assert "already 64 MiB" in error.text() and not ok.isEnabled()

    before = lkctl_state()
    size.setText("32M")
    qtbot.waitUntil(lambda: "32 MiB is smaller than datarep-data" in error.text(), timeout=10_000)
    assert "a mirror cannot shrink" in error.text() and not ok.isEnabled()
    dialog.grab().save(str(tmp_path / "resize-refused.png"))

    size.setText("128M")
    plan = dialog.findChild(QPlainTextEdit, "resize_plan")
    qtbot.waitUntil(lambda: ok.isEnabled(), timeout=10_000)
    assert not error.isVisible()
    dry = run_lkctl(["mirror", "resize", "datarep-data", "--size", "128M", "--dry-run"])
    assert plan.toPlainText() == dry.stdout.rstrip("\n")
    assert dialog.findChild(QLineEdit, "show_command").text() == (
        "lkctl mirror resize datarep-data --size 128M"
    )
    assert lkctl_state() == before  # the checks and the dry run changed nothing
    dialog.grab().save(str(tmp_path / "resize-plan.png"))
    ok.click()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=30_000)
    assert "datarep-data is 128 MiB on every server" in window.message.text()

    lab = LabBackend()
    try:
        h = lab.snapshot().hierarchies[0]
        assert h.mirrors[0].volume_size == 128 * MiB
        wait_for_mirror(lab, h.id, "lab2", MirrorState.TARGET)
        source = lab.layout.server_path("lab1", VOLUME)
        target = lab.layout.server_path("lab2", VOLUME)
        assert source.stat().st_size == target.stat().st_size == 128 * MiB
        assert digest(source) == digest(target)
        assert lab.history()[-1].command == "lkctl mirror resize datarep-data --size 128M"
    finally:
        lab.close()


# -- View › Log -------------------------------------------------------------------------------
def test_view_log_shows_new_lines_live_and_filters(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    window.tree.select_server("lab2")
    _trigger(window, "View", "Log…")
    dialog = window.operations.last_dialog
    assert isinstance(dialog, LogDialog) and dialog.isVisible()
    view = dialog.view
    status = view.findChild(QLabel, "log_status")
    assert view.findChild(QComboBox, "log_server").currentText() == "lab2"
    assert dialog.windowTitle() == "Log of lab2"
    qtbot.waitUntil(lambda: "lines of lab2's log" in status.text(), timeout=10_000)
    assert (
        view.lines()
        == run_lkctl(["log", "lab2"]).stdout.rstrip("\n").split("\n")[: len(view.lines())]
    )
    assert view.findChild(QLineEdit, "show_command").text() == "lkctl log lab2 --follow"

    # A new line appears as it is written (here by another process: lkctl).
    assert run_lkctl(["extend", "/data", "--accept-defaults", "--target", "lab2"]).returncode == 0
    qtbot.waitUntil(
        lambda: any("Create DataKeeper resource datarep-data on lab2" in x for x in view.lines()),
        timeout=15_000,
    )
    assert not any("lab3" in x and "lab2" not in x for x in view.lines())
    qtbot.waitUntil(
        lambda: view.lines() == run_lkctl(["log", "lab2"]).stdout.rstrip("\n").split("\n"),
        timeout=15_000,
    )
    dialog.grab().save(str(tmp_path / "view-log.png"))

    # Filters: a resource, then a least level (the same lines as lkctl's filters).
    view.findChild(QComboBox, "log_resource").setCurrentText("datarep-data")
    lines = view.lines()
    assert lines and all("datarep-data" in x for x in lines)
    assert lines == run_lkctl(["log", "lab2", "--resource", "datarep-data"]).stdout.rstrip(
        "\n"
    ).split("\n")
    assert view.findChild(QLineEdit, "show_command").text() == (
        "lkctl log lab2 --resource datarep-data --follow"
    )
    view.findChild(QComboBox, "log_level").setCurrentText("ERROR")
    assert view.lines() == []
    assert "0 of" in status.text() and "(filtered)" in status.text()
    view.findChild(QComboBox, "log_level").setCurrentText("INFO")
    assert view.lines() == lines
    dialog.close()
