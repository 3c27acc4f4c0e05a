"""The console's window on a fresh lab, as the GUI tests of issue 16 open it."""

from __future__ import annotations

from core.backends.lab import LabBackend
from gui.main_window import MainWindow
from tests.core.labtools import fill_source
from tests.helpers import run_lkctl


def lab_window(qtbot, *, extended: bool = False) -> MainWindow:  # type: ignore[no-untyped-def]
    """The window, connected and showing /data, its source filled with real bytes;
    ``extended``: extended to lab2 (by lkctl) and shown in sync."""
    lab = LabBackend()
    fill_source(lab)
    lab.close()
    if extended:
        assert run_lkctl(["extend", "/data", "--accept-defaults", "--wait"]).returncode == 0
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model.rowCount() == 1, timeout=10_000)
    if extended:
        qtbot.waitUntil(
            lambda: w.model.index_of("datarep-data", "lab2").data() == "Target", timeout=20_000
        )
    return w


def select(window: MainWindow, tag: str, server: str | None = None) -> None:
    r = window.cluster.find_tag(tag)
    assert r is not None and window.tree.select_resource(r.hierarchy_id, r.resource_id, server)


def lkctl_state() -> tuple[str, str]:
    """The cluster and its history, as lkctl prints them (read in another process: the
    database file is not opened here while the window's connections use it: closing a
    descriptor of it in this process would drop their locks)."""
    status = run_lkctl(["status", "--json"])
    history = run_lkctl(["history", "--json"])
    assert status.returncode == 0 and history.returncode == 0
    return status.stdout, history.stdout
