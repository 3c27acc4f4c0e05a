"""The documented extend from the console on the Pacemaker lab: Edit › Resource › Extend
Resource Hierarchy, Accept Defaults, on the seed's /data. lab2's cell shows Resyncing
with its percentage, then Target, and lab2's volume equals lab1's byte for byte.

The console runs here (the host): ``pacemaker-lab`` reaches the nodes through nsenter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QWizard

from gui.actions import find_menu_action
from gui.extend_wizard import ExtendWizard, Page
from gui.main_window import MainWindow
from tests.cluster.labtools import Lab, same_bytes
from tests.cluster.test_datakeeper_extend import DISKS
from tests.helpers import run_lkctl

pytestmark = pytest.mark.cluster


def _cell(window: MainWindow, tag: str, server: str) -> str:
    return window.model.index_of(tag, server).data() or ""


def test_extend_from_the_console_shows_resyncing_then_target(
    qtbot, seeded: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = seeded
    # a resync slow enough to be seen: 64 MiB at 8 MB/s
    done = run_lkctl(  # the mirror's speed limit (a meta attribute: nothing restarts)
        ["--cluster", "pacemaker-lab", "mirror", "speed", "datarep-data", "8000"],
        env={"LKCONSOLE_HOME": str(lab.home), "LKCONSOLE_CLUSTER": ""},
    )
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("LKCONSOLE_HOME", str(lab.home))
    monkeypatch.setenv("LKCONSOLE_CLUSTER", "pacemaker-lab")
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=30_000)
    qtbot.waitUntil(lambda: _cell(window, "/data", "lab1").startswith("Active"), timeout=60_000)
    r = window.cluster.find_tag("/data")
    assert r is not None and window.tree.select_resource(r.hierarchy_id, r.resource_id, None)
    action = find_menu_action(window.menuBar(), "Edit", "Resource", "Extend Resource Hierarchy")
    assert action is not None and action.isEnabled()
    action.trigger()
    qtbot.waitUntil(lambda: isinstance(window.operations.last_dialog, ExtendWizard), timeout=30_000)
    wizard = window.operations.last_dialog
    assert isinstance(wizard, ExtendWizard)
    wizard.button(QWizard.WizardButton.CustomButton1).click()  # Accept Defaults
    qtbot.waitUntil(lambda: wizard.currentId() == Page.PROGRESS, timeout=30_000)
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=120_000)
    wizard.accept()
    seen: list[str] = []

    def resyncing() -> bool:
        text = _cell(window, "datarep-data", "lab2")
        seen.append(text)
        return text.startswith("Resyncing ") and "%" in text

    qtbot.waitUntil(resyncing, timeout=60_000)
    shots = Path(os.environ.get("LKCONSOLE_SCREENSHOTS", lab.home))
    window.grab().save(str(shots / "pacemaker-resync.png"))
    qtbot.waitUntil(lambda: _cell(window, "datarep-data", "lab2") == "Target", timeout=120_000)
    assert _cell(window, "datarep-data", "lab1") == "Source"
    lab.run("lab1", "sync")
    one, two = (lab.home / DISKS.format(node=n) for n in ("lab1", "lab2"))
    assert same_bytes(one, two)
    window.close()
