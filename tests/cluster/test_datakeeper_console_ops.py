"""A DataKeeper hierarchy's switchover, failover and return on the Pacemaker lab, seen and
driven from the console: the seed's /data (on the mirror datarep-data) extended to lab2
with lkctl, then

- Edit › Resource › In Service on /data's lab2 cell: the tree shows /data Active on lab2,
  datarep-data Source there and Target on lab1; the fsync'ed file is intact on lab2; the
  same back to lab1;
- lab1 killed: its header says DEAD, /data comes up Active on lab2 with every fsync'ed
  byte; lab1 started again: its datarep-data cell shows Resyncing with its percentage,
  then Target, and the volumes are equal byte for byte;
- Edit › Resource › Mirror › Pause Mirror on lab1's copy: the cell shows Out of Sync;
  Resume Mirror: Target again, the volumes equal;
- Edit › Resource › Mirror › Resize Mirror: /data's ext4 grows with the mirror, /data
  back in service, lab1 Target with the same bytes.

The console runs here (the host): ``pacemaker-lab`` reaches the nodes through nsenter.
A lab of its own (two nodes, seeded): the session lab is not seeded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton

from core.backends.pacemaker import nslab
from gui.actions import find_menu_action
from gui.dialogs import OperationDialog
from gui.main_window import MainWindow
from gui.resize_dialog import ResizeDialog
from tests.cluster.labtools import Lab
from tests.cluster.test_datakeeper_extend import _lkctl, _row
from tests.cluster.test_datakeeper_faults import _kill_node
from tests.cluster.test_datakeeper_switchover import _volumes_equal
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

FS = "/data"
RID = "datarep-data"
FILE = "/data/console-one"


@pytest.fixture
def window(qtbot, seeded: Lab, monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    """The console connected to the seeded lab, the hierarchy shown."""
    monkeypatch.setenv("LKCONSOLE_HOME", str(seeded.home))
    monkeypatch.setenv("LKCONSOLE_CLUSTER", "pacemaker-lab")
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=60_000)
    yield window
    window.close()


def _cell(window: MainWindow, tag: str, server: str) -> str:
    return window.model.index_of(tag, server).data() or ""


def _header(window: MainWindow, server: str) -> str:
    names = [s.name for s in window.model.servers]
    if server not in names:
        return ""
    section = names.index(server) + 1
    return str(window.model.headerData(section, Qt.Orientation.Horizontal))


def _message(window: MainWindow) -> str:
    return window.message_bar.message.text()


def _select(window: MainWindow, tag: str, server: str) -> None:
    r = window.cluster.find_tag(tag)
    assert r is not None and window.tree.select_resource(r.hierarchy_id, r.resource_id, server)


def _confirm(qtbot, window: MainWindow, tag: str, server: str, *menu: str) -> None:
    """Select ``tag``'s cell on ``server``, open the menu entry and click its OK; wait
    until the dialog has done (closed) and its result is in the message bar."""
    _select(window, tag, server)
    window.operations.last_dialog = None
    action = find_menu_action(window.menuBar(), *menu)
    assert action is not None and action.isEnabled(), menu
    action.trigger()
    qtbot.waitUntil(
        lambda: isinstance(window.operations.last_dialog, OperationDialog), timeout=30_000
    )
    dialog = window.operations.last_dialog
    assert isinstance(dialog, OperationDialog)
    box = dialog.findChild(QComboBox, "operation_server")
    if box is not None:
        assert box.currentText() == server  # the selected cell's server is preselected
    ok = dialog.findChild(QPushButton, "operation_ok")
    assert ok is not None and ok.isEnabled()
    ok.click()
    error = dialog.error
    qtbot.waitUntil(lambda: not dialog.isVisible() or error.isVisible(), timeout=240_000)
    assert not error.isVisible(), error.text()


def _write(lab: Lab, node: str, path: str, count: int) -> str:
    """``count`` 256 KiB blocks of random bytes at ``path`` on ``node``, fsync'ed; the
    file's sha256."""
    lab.run(node, "dd", "if=/dev/urandom", f"of={path}", "bs=256k", f"count={count}",
            "conv=fsync", "status=none", timeout=60)  # fmt: skip
    return _hash(lab, node, path)


def _hash(lab: Lab, node: str, path: str) -> str:
    return lab.run(node, "sha256sum", path, timeout=60).split()[0]


def _in_service(qtbot, window: MainWindow, lab: Lab, to: str, other: str) -> None:
    """What the tree shows once /data is in service on ``to`` and ``other`` is in sync;
    lkctl says the same."""
    qtbot.waitUntil(lambda: _cell(window, FS, to).startswith("Active"), timeout=120_000)
    qtbot.waitUntil(lambda: _cell(window, FS, other) == "Standby", timeout=120_000)
    qtbot.waitUntil(lambda: _cell(window, RID, to) == "Source", timeout=120_000)
    qtbot.waitUntil(lambda: _cell(window, RID, other) == "Target", timeout=180_000)
    states = {to: "ISP Active", other: "OSU Standby"}
    assert _row(lab, FS) == f"/data | filesystem | {states['lab1']} | {states['lab2']}"


def test_switchover_from_the_console_and_back(qtbot, seeded: Lab, window: MainWindow) -> None:
    lab = seeded
    rc, out, err = _lkctl(lab, "extend", FS, "--target", "lab2", "--accept-defaults")
    assert rc == 0, f"{out}\n{err}"
    qtbot.waitUntil(lambda: _cell(window, RID, "lab2") == "Target", timeout=180_000)
    assert _cell(window, RID, "lab1") == "Source"
    assert _cell(window, FS, "lab1").startswith("Active")
    written = _write(lab, "lab1", FILE, 8)

    _confirm(qtbot, window, FS, "lab2", "Edit", "Resource", "In Service")
    said = _message(window)
    assert "/data: out of service on lab1" in said, said
    assert "datarep-data source on lab2" in said, said
    _in_service(qtbot, window, lab, "lab2", "lab1")
    assert _hash(lab, "lab2", FILE) == written
    assert FS not in lab.run("lab1", "cat", "/proc/mounts").split()

    written = _write(lab, "lab2", FILE, 4)
    _confirm(qtbot, window, FS, "lab1", "Edit", "Resource", "In Service")
    said = _message(window)
    assert "/data: out of service on lab2" in said, said
    assert "datarep-data source on lab1" in said, said
    _in_service(qtbot, window, lab, "lab1", "lab2")
    assert _hash(lab, "lab1", FILE) == written
    wait_until(lambda: _volumes_equal(lab, "lab1"), 120, "the volumes equal byte for byte")


def test_failover_and_return_seen_in_the_console(qtbot, seeded: Lab, window: MainWindow) -> None:
    """After the switchover and back: /data on lab1, lab2 a Target."""
    lab = seeded
    qtbot.waitUntil(lambda: _cell(window, RID, "lab2") == "Target", timeout=120_000)
    assert _header(window, "lab1") == "lab1 — ALIVE"
    written = _write(lab, "lab1", FILE, 8)

    _kill_node(lab, "lab1")
    qtbot.waitUntil(lambda: _header(window, "lab1") == "lab1 — DEAD", timeout=120_000)
    qtbot.waitUntil(lambda: _cell(window, FS, "lab2").startswith("Active"), timeout=180_000)
    assert _cell(window, RID, "lab2") == "Source"
    assert _hash(lab, "lab2", FILE) == written

    # what lab1 missed, copied slowly enough to be seen: 24 MiB at 4 MB/s
    rc, out, err = _lkctl(lab, "mirror", "speed", RID, "4000")
    assert rc == 0, f"{out}\n{err}"
    after = _write(lab, "lab2", "/data/console-two", 96)
    nslab.start(lab.home, "lab1")
    qtbot.waitUntil(lambda: _header(window, "lab1") == "lab1 — ALIVE", timeout=120_000)
    seen: list[str] = []

    def resyncing() -> bool:
        text = _cell(window, RID, "lab1")
        seen.append(text)
        return text.startswith("Resyncing ") and "%" in text

    qtbot.waitUntil(resyncing, timeout=120_000)
    rc, out, err = _lkctl(lab, "mirror", "speed", RID, "0")
    assert rc == 0, f"{out}\n{err}"
    qtbot.waitUntil(lambda: _cell(window, RID, "lab1") == "Target", timeout=180_000)
    assert _cell(window, FS, "lab2").startswith("Active")  # it stays where it is
    assert _cell(window, FS, "lab1") == "Standby"
    assert _cell(window, RID, "lab2") == "Source"
    assert _hash(lab, "lab2", FILE) == written
    assert _hash(lab, "lab2", "/data/console-two") == after
    wait_until(lambda: _volumes_equal(lab, "lab2"), 120, "the volumes equal byte for byte")
    print(f"\nlab1's cell on its return: {list(dict.fromkeys(seen))}")


def test_pause_and_resume_mirror_from_the_console(qtbot, seeded: Lab, window: MainWindow) -> None:
    """After the failover and return: /data on lab2, lab1 a Target."""
    lab = seeded
    qtbot.waitUntil(lambda: _cell(window, RID, "lab1") == "Target", timeout=120_000)
    _confirm(qtbot, window, RID, "lab1", "Edit", "Resource", "Mirror", "Pause Mirror")
    assert "Paused the mirror of datarep-data to lab1" in _message(window), _message(window)
    qtbot.waitUntil(lambda: _cell(window, RID, "lab1") == "Out of Sync", timeout=120_000)
    assert "Out of Sync" in _row(lab, RID)  # lkctl says the same
    written = _write(lab, "lab2", FILE, 4)  # recorded in the bitmap only

    _confirm(qtbot, window, RID, "lab1", "Edit", "Resource", "Mirror", "Resume Mirror")
    assert "Resumed the mirror of datarep-data to lab1" in _message(window), _message(window)
    qtbot.waitUntil(lambda: _cell(window, RID, "lab1") == "Target", timeout=180_000)
    assert _cell(window, FS, "lab2").startswith("Active")
    assert _hash(lab, "lab2", FILE) == written
    wait_until(lambda: _volumes_equal(lab, "lab2"), 120, "the volumes equal byte for byte")


def test_resize_mirror_from_the_console_grows_data(qtbot, seeded: Lab, window: MainWindow) -> None:
    """After pause and resume: /data on lab2. Edit › Resource › Mirror › Resize Mirror on
    datarep-data, 80M: the dialog says /data goes out of service meanwhile and its ext4
    grows; once done the message says so, /data is Active on lab2 again, larger (df),
    lab1 Target with lab2's bytes."""
    lab = seeded
    qtbot.waitUntil(lambda: _cell(window, RID, "lab1") == "Target", timeout=120_000)
    df = ("df", "--output=size", "-B1", FS)
    before = int(lab.run("lab2", *df).split()[-1])
    _select(window, RID, "lab2")
    window.operations.last_dialog = None
    action = find_menu_action(window.menuBar(), "Edit", "Resource", "Mirror", "Resize Mirror…")
    assert action is not None and action.isEnabled(), action and action.toolTip()
    assert "/data is out of service meanwhile" in action.toolTip()
    action.trigger()
    qtbot.waitUntil(lambda: isinstance(window.operations.last_dialog, ResizeDialog), timeout=30_000)
    dialog = window.operations.last_dialog
    assert isinstance(dialog, ResizeDialog)
    text = dialog.findChild(QLabel, "operation_text")
    assert "/data goes out of service while the mirror grows" in text.text()
    assert "its ext4 is checked and grown to fill it (e2fsck, resize2fs) on lab2" in text.text()
    dialog.findChild(QLineEdit, "size").setText("80M")
    ok = dialog.findChild(QPushButton, "operation_ok")
    qtbot.waitUntil(ok.isEnabled, timeout=30_000)
    shots = Path(os.environ.get("LKCONSOLE_SCREENSHOTS", lab.home))
    dialog.grab().save(str(shots / "pacemaker-resize.png"))
    ok.click()
    qtbot.waitUntil(lambda: not dialog.isVisible() or dialog.error.isVisible(), timeout=300_000)
    assert not dialog.error.isVisible(), dialog.error.text()
    assert "datarep-data is 80 MiB on every server" in _message(window), _message(window)
    qtbot.waitUntil(lambda: _cell(window, FS, "lab2").startswith("Active"), timeout=120_000)
    qtbot.waitUntil(lambda: _cell(window, RID, "lab1") == "Target", timeout=180_000)
    assert int(lab.run("lab2", *df).split()[-1]) > before + 8 * 1024 * 1024
    wait_until(lambda: _volumes_equal(lab, "lab2"), 120, "the volumes equal byte for byte")
