"""The console's window on the Pacemaker lab (pytest-qt, offscreen): what it shows comes from
the real cluster, a change made behind its back shows up live, and a failover Pacemaker does
is shown when Pacemaker does it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton, QWizard

from core.backends.pacemaker import PacemakerBackend, nslab
from gui.actions import find_menu_action
from gui.create_wizard import CreateWizard
from gui.extend_wizard import ExtendWizard
from gui.extend_wizard import Page as ExtendPage
from gui.main_window import MainWindow
from tests.cluster.labtools import Lab
from tests.cluster.pcmk_plans import ADMIN, extend, ip
from tests.cluster.test_pacemaker_backend import addresses, running_on

pytestmark = pytest.mark.cluster

H = Qt.Orientation.Horizontal


@pytest.fixture
def window(
    qtbot, backend: PacemakerBackend, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    """``MainWindow()`` with ``LKCONSOLE_CLUSTER=pacemaker-lab``: what a user starts."""
    monkeypatch.setenv("LKCONSOLE_CLUSTER", "pacemaker-lab")
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model.columnCount() == 4, timeout=30_000)
    yield w
    w.close()


def _row_of(window: MainWindow, tag: str) -> int | None:
    proxy = window.tree.model()
    for row in range(proxy.rowCount()):
        if proxy.index(row, 0).data() == tag:
            return row
    return None


def _cell(window: MainWindow, tag: str, column: int) -> str | None:
    row = _row_of(window, tag)
    return None if row is None else window.tree.model().index(row, column).data()


def test_the_window_shows_the_pacemaker_lab_and_a_failover_as_pacemaker_does_it(
    qtbot, lab: Lab, backend: PacemakerBackend, window: MainWindow
) -> None:
    assert "pacemaker-lab" in window.windowTitle()
    assert [window.model.headerData(c, H) for c in range(1, 4)] == [
        "lab1 — ALIVE",
        "lab2 — ALIVE",
        "lab3 — ALIVE",
    ]
    message = window.findChild(QLabel, "message_bar")
    assert "3 of 3 servers alive" in message.text()
    # Made behind the console's back (another console, crm, pcs): it shows up (how fast
    # is benchmarks/pacemaker_backend.py's business).
    backend.apply(ip("gui-ip", "10.213.0.163"), ADMIN)
    qtbot.waitUntil(lambda: _cell(window, "gui-ip", 1) == "Active", timeout=10_000)
    extend(backend, "gui-ip", ("lab2", 2), ("lab3", 3))
    qtbot.waitUntil(lambda: _cell(window, "gui-ip", 2) == "Standby", timeout=10_000)
    assert _cell(window, "gui-ip", 3) == "Standby"
    # A real failure of lab1: Pacemaker fences it and starts gui-ip on lab2 (priority 2).
    nslab.stop(lab.home, "lab1")
    qtbot.waitUntil(lambda: window.model.headerData(1, H) == "lab1 — DEAD", timeout=30_000)
    qtbot.waitUntil(lambda: _cell(window, "gui-ip", 2) == "Active", timeout=60_000)
    assert _cell(window, "gui-ip", 3) == "Standby"
    assert "2 of 3 servers alive" in message.text()


def _opened(qtbot, window: MainWindow, kind: type) -> object:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: isinstance(window.operations.last_dialog, kind), timeout=30_000)
    dialog = window.operations.last_dialog
    window.operations.last_dialog = None
    return dialog


def _accept_defaults(qtbot, wizard: ExtendWizard) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: wizard.button(QWizard.WizardButton.CustomButton1).isVisible())
    wizard.button(QWizard.WizardButton.CustomButton1).click()
    qtbot.waitUntil(lambda: wizard.currentId() == ExtendPage.PROGRESS, timeout=30_000)
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=60_000)
    wizard.next()
    assert wizard.currentId() == ExtendPage.FINISH


def test_a_new_user_makes_an_ip_hierarchy_extends_it_twice_and_watches_it_fail_over(
    qtbot, lab: Lab, backend: PacemakerBackend, window: MainWindow
) -> None:
    """README's walk on the Pacemaker lab, through the menus: Create Resource Hierarchy
    (IP Address, what the lab proposes), Extend (Accept Defaults, then Next Server and
    Accept Defaults again), then lab1 fails for real."""
    edit = window.menuBar()
    create = find_menu_action(edit, "Edit", "Resource", "Create Resource Hierarchy")
    assert create is not None and create.isEnabled(), create.toolTip() if create else ""
    create.trigger()
    wizard = _opened(qtbot, window, CreateWizard)
    assert isinstance(wizard, CreateWizard)
    wizard.currentPage().findChild(QComboBox, "kind").setCurrentText("IP Address")
    wizard.next()
    page = wizard.currentPage()
    address = page.findChild(QLineEdit, "address").text()
    assert address.startswith("10.213.0.") and address.endswith("/24")  # the bridge's subnet
    assert page.findChild(QLineEdit, "interface").text() == "eth0"
    tag = page.findChild(QLineEdit, "tag").text()
    qtbot.waitUntil(page.isComplete, timeout=30_000)
    wizard.next()
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=60_000)
    wizard.next()
    wizard.accept()
    qtbot.waitUntil(lambda: _cell(window, tag, 1) == "Active", timeout=30_000)
    assert address.split("/")[0] in addresses(lab, "lab1")  # really up on lab1's eth0

    r = window.cluster.find_tag(tag)
    assert r is not None and window.tree.select_resource(r.hierarchy_id, r.resource_id, "lab1")
    extend = find_menu_action(edit, "Edit", "Resource", "Extend Resource Hierarchy")
    assert extend is not None and extend.isEnabled(), extend.toolTip() if extend else ""
    extend.trigger()
    wizard = _opened(qtbot, window, ExtendWizard)
    assert isinstance(wizard, ExtendWizard)
    _accept_defaults(qtbot, wizard)  # to lab2
    next_server = wizard.findChild(QPushButton, "next_server")
    assert next_server.isEnabled(), next_server.toolTip()
    next_server.click()
    qtbot.waitUntil(lambda: wizard.currentId() == ExtendPage.PRE_EXTEND, timeout=30_000)
    assert wizard.request().target_server == "lab3"
    _accept_defaults(qtbot, wizard)  # to lab3
    wizard.accept()
    qtbot.waitUntil(lambda: _cell(window, tag, 2) == "Standby", timeout=30_000)
    qtbot.waitUntil(lambda: _cell(window, tag, 3) == "Standby", timeout=30_000)

    nslab.stop(lab.home, "lab1")  # killed: the others fence it, Pacemaker moves the address
    qtbot.waitUntil(lambda: window.model.headerData(1, H) == "lab1 — DEAD", timeout=30_000)
    qtbot.waitUntil(lambda: _cell(window, tag, 2) == "Active", timeout=60_000)
    assert running_on(lab, "lab2", tag) == {"lab2"}
    assert address.split("/")[0] in addresses(lab, "lab2")
    assert _cell(window, tag, 3) == "Standby"
