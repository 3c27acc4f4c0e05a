"""What-if in the confirmation dialogs: the plan page says what will happen to every
hierarchy, the same text as ``lkctl … --dry-run``; nothing changes until OK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QComboBox, QPlainTextEdit, QPushButton

from gui.actions import find_menu_action
from gui.dialogs import OperationDialog
from gui.main_window import MainWindow
from tests.gui.windows import lab_window, lkctl_state, select
from tests.helpers import run_lkctl


@pytest.fixture
def window(qtbot, hermetic_env: Path) -> Iterator[MainWindow]:
    yield lab_window(qtbot, extended=True)


def _open(qtbot, window: MainWindow, *menu: str) -> OperationDialog:
    window.operations.last_dialog = None
    action = find_menu_action(window.menuBar(), *menu)
    assert action is not None and action.isEnabled(), menu
    action.trigger()
    dialog = window.operations.last_dialog
    assert isinstance(dialog, OperationDialog)
    return dialog


def _what_if(qtbot, dialog: OperationDialog) -> str:
    box = dialog.findChild(QPlainTextEdit, "what_if")
    assert box is not None and box.isVisible() and box.isReadOnly()
    qtbot.waitUntil(lambda: box.toPlainText() != "", timeout=10_000)
    return box.toPlainText()


def _dry_run(*words: str) -> str:
    done = run_lkctl([*words, "--dry-run"])
    assert done.returncode == 0, done.stderr
    return done.stdout.rstrip("\n")


def test_switchover_dialog_shows_the_dry_run_text(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    before = lkctl_state()
    select(window, "/data", "lab2")
    dialog = _open(qtbot, window, "Edit", "Resource", "In Service…")
    text = _what_if(qtbot, dialog)
    assert text == _dry_run("switchover", "/data", "--to", "lab2")
    assert "lab2" in text and "datarep-data" in text
    dialog.grab().save(str(tmp_path / "switchover-what-if.png"))
    dialog.findChild(QPushButton, "operation_cancel").click()
    assert lkctl_state() == before  # the what-if changed nothing


def test_every_confirmation_shows_its_what_if(qtbot, window: MainWindow) -> None:
    select(window, "/data", "lab1")
    cases = [
        (("Edit", "Resource", "Out of Service…"), ("outofservice", "/data")),
        (("Edit", "Resource", "Delete Resource Hierarchy…"), ("delete", "/data")),
        (("Edit", "Server", "Stop Server…"), ("lab", "stop", "lab1")),
    ]
    for menu, words in cases:
        dialog = _open(qtbot, window, *menu)
        assert _what_if(qtbot, dialog) == _dry_run(*words), menu
        dialog.reject()
    select(window, "/data", "lab2")
    dialog = _open(qtbot, window, "Edit", "Resource", "Unextend Resource Hierarchy…")
    assert dialog.findChild(QComboBox, "operation_server").currentText() == "lab2"
    assert _what_if(qtbot, dialog) == _dry_run("unextend", "/data", "--server", "lab2")
    dialog.reject()
