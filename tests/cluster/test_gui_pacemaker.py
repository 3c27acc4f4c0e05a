"""The console's window on the Pacemaker lab (pytest-qt, offscreen): what it shows comes from
the real cluster, a change made behind its back shows up live, and a failover Pacemaker does
is shown when Pacemaker does it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from core.backends.pacemaker import PacemakerBackend, nslab
from gui.main_window import MainWindow
from tests.cluster.labtools import Lab
from tests.cluster.pcmk_plans import ADMIN, extend, ip

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
        "lab1  (ALIVE)",
        "lab2  (ALIVE)",
        "lab3  (ALIVE)",
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
    qtbot.waitUntil(lambda: window.model.headerData(1, H) == "lab1  (DEAD)", timeout=30_000)
    qtbot.waitUntil(lambda: _cell(window, "gui-ip", 2) == "Active", timeout=60_000)
    assert _cell(window, "gui-ip", 3) == "Standby"
    assert "2 of 3 servers alive" in message.text()
