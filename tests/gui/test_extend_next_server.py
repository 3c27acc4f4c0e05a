"""Extend "Next Server": after one extend, the same hierarchy to one more server, each
target with its own synchronous or asynchronous mirror."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton, QWizard

from core.backends.lab import LabBackend
from gui.actions import find_menu_action
from gui.extend_wizard import ExtendWizard, Page
from gui.main_window import MainWindow
from tests.core.labtools import digest, wait_for_mirror
from tests.gui.windows import lab_window

VOLUME = "/disks/datarep-data.img"


@pytest.fixture
def window(qtbot, hermetic_env: Path) -> Iterator[MainWindow]:
    yield lab_window(qtbot)


def _next(qtbot, wizard: ExtendWizard, expected: int) -> None:
    qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=10_000)
    wizard.next()
    assert wizard.currentId() == expected


def _open_wizard(qtbot, window: MainWindow) -> ExtendWizard:
    r = window.cluster.find_tag("/data")
    assert r is not None and window.tree.select_resource(r.hierarchy_id, r.resource_id, None)
    action = find_menu_action(window.menuBar(), "Edit", "Resource", "Extend Resource Hierarchy")
    assert action is not None and action.isEnabled()
    action.trigger()
    qtbot.waitUntil(lambda: isinstance(window.operations.last_dialog, ExtendWizard), timeout=10_000)
    wizard = window.operations.last_dialog
    assert isinstance(wizard, ExtendWizard)
    return wizard


def _walk_to_extend_page(qtbot, wizard: ExtendWizard) -> None:
    _next(qtbot, wizard, Page.CHECKS)
    _next(qtbot, wizard, Page.EXTEND)


def test_next_server_extends_to_a_second_target_with_its_own_mode(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    wizard = _open_wizard(qtbot, window)
    _next(qtbot, wizard, Page.PRE_EXTEND)
    assert wizard.currentPage().findChild(QComboBox, "target_server").currentText() == "lab2"
    _walk_to_extend_page(qtbot, wizard)
    replication = wizard.currentPage().findChild(QComboBox, "replication")
    assert replication.isVisible() and replication.currentText() == "Synchronous"
    _next(qtbot, wizard, Page.PROGRESS)
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=30_000)
    command = wizard.findChild(QLineEdit, "show_command").text()
    assert "--async" not in command and "--sync" not in command  # the mirror's own mode
    _next(qtbot, wizard, Page.FINISH)

    button = wizard.findChild(QPushButton, "next_server")
    assert button.isVisible() and button.isEnabled() and button.text() == "&Next Server"
    wizard.grab().save(str(tmp_path / "extend-next-server.png"))
    button.click()
    qtbot.waitUntil(lambda: wizard.currentId() == Page.PRE_EXTEND, timeout=10_000)
    page = wizard.currentPage()
    # The defaults recomputed: the next free target, the next priority; the template's
    # priority is set already, so it is not asked again.
    assert page.findChild(QComboBox, "template_server").currentText() == "lab1"
    assert page.findChild(QComboBox, "target_server").currentText() == "lab3"
    assert page.findChild(QComboBox, "target_priority").currentText() == "20"
    assert not page.findChild(QComboBox, "template_priority").isVisible()
    assert wizard.button(QWizard.WizardButton.CancelButton).isEnabled()

    _walk_to_extend_page(qtbot, wizard)
    replication = wizard.currentPage().findChild(QComboBox, "replication")
    replication.setCurrentText("Asynchronous")
    _next(qtbot, wizard, Page.PROGRESS)
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=30_000)
    steps = [wizard.progress.steps.item(i).text() for i in range(wizard.progress.steps.count())]
    assert any("lab3" in s and "(asynchronous replication)" in s for s in steps)
    command = wizard.findChild(QLineEdit, "show_command").text()
    assert "--target lab3" in command and command.endswith("--async --accept-defaults")
    _next(qtbot, wizard, Page.FINISH)
    # Every server has the hierarchy now: Next Server says so instead.
    assert not button.isEnabled()
    why = "Every server of the cluster has /data now."
    assert button.toolTip() == why
    assert wizard.findChild(QLabel, "next_server_note").text() == why
    wizard.button(QWizard.WizardButton.FinishButton).click()

    lab = LabBackend()
    try:
        h = lab.snapshot().hierarchies[0]
        wait_for_mirror(lab, h.id, "lab2")
        wait_for_mirror(lab, h.id, "lab3")
        m = lab.snapshot().hierarchies[0].mirrors[0]
        assert [(t.server, t.asynchronous) for t in m.targets] == [
            ("lab2", False),
            ("lab3", True),
        ]
        source = digest(lab.layout.server_path("lab1", VOLUME))
        assert digest(lab.layout.server_path("lab2", VOLUME)) == source
        assert digest(lab.layout.server_path("lab3", VOLUME)) == source
    finally:
        lab.close()
