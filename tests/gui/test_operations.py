"""The console's operations end to end: menus and context menus open the real dialogs,
and what they do is what the lab then shows (and what their lkctl line does)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QWizard,
)

from core.backends.lab import LabBackend, users
from core.model import Role
from core.operations import mirror as mirror_ops
from gui.actions import find_menu_action
from gui.create_wizard import CreateWizard
from gui.extend_wizard import ExtendWizard, Page
from gui.main_window import MainWindow
from tests.core.labtools import digest, fill_source
from tests.helpers import local_administrator, run_lkctl


@pytest.fixture
def window(qtbot, hermetic_env: Path) -> Iterator[MainWindow]:
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model.rowCount() == 1, timeout=10_000)
    yield w


def _select(window: MainWindow, tag: str, server: str | None = None) -> None:
    r = window.cluster.find_tag(tag)
    assert r is not None
    assert window.tree.select_resource(r.hierarchy_id, r.resource_id, server)


def _cell(window: MainWindow, tag: str, server: str) -> str:
    return window.model.index_of(tag, server).data() or ""


def _extend_in_lab(window: MainWindow, qtbot, target: str = "lab2") -> None:
    assert (
        run_lkctl(["extend", "/data", "--accept-defaults", "--target", target, "--wait"]).returncode
        == 0
    )
    qtbot.waitUntil(lambda: _cell(window, "datarep-data", target) == "Target", timeout=10_000)


def _opened(qtbot, window: MainWindow, kind: type) -> object:
    """The dialog the last action opened (a wizard opens once a worker gathered its facts)."""
    qtbot.waitUntil(lambda: isinstance(window.operations.last_dialog, kind), timeout=10_000)
    dialog = window.operations.last_dialog
    window.operations.last_dialog = None  # the next one is new
    return dialog


def _confirm(qtbot, window: MainWindow) -> None:
    dialog = window.operations.last_dialog
    dialog.findChild(QPushButton, "operation_ok").click()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=20_000)


def test_the_menu_path_opens_the_extend_wizard(qtbot, window: MainWindow) -> None:
    _select(window, "/data")
    action = find_menu_action(window.menuBar(), "Edit", "Resource", "Extend Resource Hierarchy")
    assert action is not None and action.isEnabled()
    action.trigger()
    wizard = _opened(qtbot, window, ExtendWizard)
    assert isinstance(wizard, ExtendWizard) and wizard.isVisible()
    assert wizard.currentId() == Page.INTRO
    wizard.next()
    page = wizard.currentPage()
    assert page.findChild(QComboBox, "template_server").currentText() == "lab1"
    assert page.findChild(QComboBox, "tag_to_extend").currentText() == "/data"
    wizard.reject()


def test_with_nothing_selected_the_menu_extends_what_can_be_extended(
    qtbot, window: MainWindow
) -> None:
    # A new administrator opens the console and goes straight to the documented extend.
    assert window.selection().kind == "none"
    action = find_menu_action(window.menuBar(), "Edit", "Resource", "Extend Resource Hierarchy")
    assert action is not None and action.isEnabled()
    assert "asks for the template server and the tag" in action.toolTip()
    action.trigger()
    wizard = _opened(qtbot, window, ExtendWizard)
    assert isinstance(wizard, ExtendWizard) and wizard.isVisible()
    wizard.next()
    page = wizard.currentPage()
    assert page.findChild(QComboBox, "template_server").isVisible()
    assert page.findChild(QComboBox, "template_server").currentText() == "lab1"
    assert page.findChild(QComboBox, "tag_to_extend").currentText() == "/data"
    assert page.findChild(QComboBox, "target_server").currentText() == "lab2"
    wizard.reject()


def test_right_click_an_empty_cell_extends_to_that_server(qtbot, window: MainWindow) -> None:
    _select(window, "datarep-data", "lab3")
    menu = window.context_menu("cell")
    next(a for a in menu.actions() if a.objectName() == "extend_hierarchy").trigger()
    wizard = _opened(qtbot, window, ExtendWizard)
    assert isinstance(wizard, ExtendWizard)
    assert wizard.defaults.request.target_server == "lab3"
    assert wizard.defaults.request.tag_to_extend == "datarep-data"
    wizard.accept_defaults()
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=20_000)
    qtbot.waitUntil(lambda: _cell(window, "datarep-data", "lab3") == "Target", timeout=20_000)
    assert "Extended to lab3" in window.message.text()


def test_create_then_extend_now(qtbot, window: MainWindow) -> None:
    window.actions["create_hierarchy"].trigger()
    wizard = _opened(qtbot, window, CreateWizard)
    for _ in range(3):  # the recovery kit (DataKeeper), where, what
        qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=10_000)
        wizard.next()
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=20_000)
    wizard.next()
    wizard.findChild(QPushButton, "extend_now").click()
    extend = _opened(qtbot, window, ExtendWizard)
    assert isinstance(extend, ExtendWizard) and extend.from_create
    extend.next()
    page = extend.currentPage()
    assert not page.findChild(QComboBox, "template_server").isVisible()
    assert not page.findChild(QComboBox, "tag_to_extend").isVisible()
    assert extend.request().tag_to_extend == "/data2"
    qtbot.waitUntil(lambda: window.model.index_of("/data2").isValid(), timeout=10_000)


def test_a_real_resync_shows_progress_then_target(qtbot, window: MainWindow) -> None:
    backend = LabBackend()
    fill_source(backend, every=512 * 1024, length=400_000)  # ~50 MiB of data
    mirror_ops.set_speed_limit(backend, "datarep-data", 20_000, local_administrator())
    backend.close()
    seen: set[str] = set()
    window.model.dataChanged.connect(
        lambda a, b, roles=(): seen.add(_cell(window, "datarep-data", "lab2"))
    )
    assert run_lkctl(["extend", "/data", "--accept-defaults"]).returncode == 0
    qtbot.waitUntil(lambda: _cell(window, "datarep-data", "lab2") == "Target", timeout=30_000)
    progress = sorted(t for t in seen if t.startswith("Resyncing "))
    assert progress, seen
    assert any(" · " in t and "MB/s" in t for t in progress)  # rate and time left too


def test_switchover_through_in_service_with_its_command(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    _extend_in_lab(window, qtbot)
    _select(window, "/data", "lab2")
    action = window.actions["in_service"]
    assert action.isEnabled(), action.toolTip()
    assert "Switch /data over from lab1 to lab2" in action.toolTip()
    action.trigger()
    dialog = window.operations.last_dialog
    assert dialog.findChild(QComboBox, "operation_server").currentText() == "lab2"
    dialog.findChild(QPushButton, "show_command_button").click()
    command = dialog.findChild(QLineEdit, "show_command")
    assert command.isVisible() and command.text() == "lkctl switchover /data --to lab2"
    _confirm(qtbot, window)
    qtbot.waitUntil(lambda: _cell(window, "/data", "lab2") == "Active", timeout=10_000)
    assert _cell(window, "/data", "lab1") == "Standby"
    # The same line in a fresh lab gives the same state.
    env = {"LKCONSOLE_HOME": str(tmp_path / "other")}
    assert (
        run_lkctl(
            ["extend", "/data", "--accept-defaults", "--target", "lab2", "--wait"], env=env
        ).returncode
        == 0
    )
    assert run_lkctl(shlex.split(command.text())[1:], env=env).returncode == 0
    ours = json.loads(run_lkctl(["status", "--json"]).stdout)
    theirs = json.loads(run_lkctl(["status", "--json"], env=env).stdout)
    assert ours["hierarchies"][0]["in_service_on"] == theirs["hierarchies"][0]["in_service_on"]
    assert ours["hierarchies"][0]["priorities"] == theirs["hierarchies"][0]["priorities"]


def test_no_switchover_while_resyncing(qtbot, window: MainWindow) -> None:
    backend = LabBackend()
    fill_source(backend, every=512 * 1024, length=400_000)
    mirror_ops.set_speed_limit(backend, "datarep-data", 2_000, local_administrator())
    backend.close()
    assert run_lkctl(["extend", "/data", "--accept-defaults"]).returncode == 0
    qtbot.waitUntil(
        lambda: _cell(window, "datarep-data", "lab2").startswith("Resyncing"), timeout=10_000
    )
    _select(window, "/data", "lab2")
    action = window.actions["in_service"]
    assert not action.isEnabled()
    assert "still resyncing to lab2" in action.toolTip()


def test_unextend_and_delete_dialogs(qtbot, window: MainWindow) -> None:
    _extend_in_lab(window, qtbot)
    _select(window, "/data", "lab2")
    window.actions["unextend_hierarchy"].trigger()
    assert (
        window.operations.last_dialog.findChild(QComboBox, "operation_server").currentText()
        == "lab2"
    )
    _confirm(qtbot, window)
    qtbot.waitUntil(lambda: _cell(window, "/data", "lab2") == "", timeout=10_000)
    _select(window, "/data")
    window.actions["delete_hierarchy"].trigger()
    text = window.operations.last_dialog.findChild(QLabel, "operation_text").text()
    assert "no volume is deleted" in text
    _confirm(qtbot, window)
    qtbot.waitUntil(lambda: window.model.rowCount() == 0, timeout=10_000)


def test_stop_server_fails_over_and_force_online_warns(qtbot, window: MainWindow) -> None:
    _extend_in_lab(window, qtbot)
    _select(window, "/data", "lab1")
    window.actions["stop_server"].trigger()
    _confirm(qtbot, window)
    qtbot.waitUntil(lambda: _cell(window, "/data", "lab2") == "Active", timeout=10_000)
    assert _cell(window, "/data", "lab1") == "Failed"
    _select(window, "/data", "lab1")
    window.actions["start_server"].trigger()
    _confirm(qtbot, window)
    qtbot.waitUntil(lambda: _cell(window, "datarep-data", "lab1") == "Target", timeout=20_000)
    lab = LabBackend()
    source = lab.layout.server_path("lab2", "/disks/datarep-data.img")
    assert digest(lab.layout.server_path("lab1", "/disks/datarep-data.img")) == digest(source)
    lab.close()


def test_mirror_pause_and_resume_dialogs(qtbot, window: MainWindow) -> None:
    _extend_in_lab(window, qtbot)
    _select(window, "datarep-data", "lab2")
    window.actions["pause_mirror"].trigger()
    _confirm(qtbot, window)
    qtbot.waitUntil(lambda: _cell(window, "datarep-data", "lab2") == "Out of Sync", timeout=10_000)
    assert not window.actions["pause_mirror"].isEnabled()
    assert window.actions["resume_mirror"].isEnabled()
    window.actions["resume_mirror"].trigger()
    _confirm(qtbot, window)
    qtbot.waitUntil(lambda: _cell(window, "datarep-data", "lab2") == "Target", timeout=10_000)


def test_connect_with_a_password_and_the_keyring(qtbot, window: MainWindow) -> None:
    backend = LabBackend()
    users.add_user(backend.store, "olga", Role.OPERATOR, "correct horse", local_administrator())
    backend.close()
    window.actions["disconnect"].trigger()
    window.actions["connect"].trigger()
    dialog = window.operations.last_dialog
    qtbot.waitUntil(lambda: dialog.keyring_read, timeout=10_000)
    dialog.findChild(QLineEdit, "connect_user").setText("olga")
    dialog.findChild(QLineEdit, "connect_password").setText("wrong password")
    dialog.findChild(QPushButton, "connect_ok").click()
    error = dialog.findChild(QLabel, "connect_error")
    qtbot.waitUntil(lambda: "Wrong user name or password" in error.text(), timeout=10_000)
    dialog.findChild(QLineEdit, "connect_password").setText("correct horse")
    dialog.findChild(QCheckBox, "remember_password").setChecked(True)
    dialog.findChild(QPushButton, "connect_ok").click()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)
    assert window.session.user == "olga" and window.session.role is Role.OPERATOR
    assert keyring.get_password("lkconsole", "olga@lab") == "correct horse"
    assert "Operator" in window.findChild(QLabel, "connection_label").text()
    _select(window, "/data")
    assert not window.actions["extend_hierarchy"].isEnabled()  # needs Administrator
    # Next time the dialog offers the last user, and the password comes from the keyring
    # (read once, on a worker).
    window.actions["disconnect"].trigger()
    window.actions["connect"].trigger()
    again = window.operations.last_dialog
    assert again.findChild(QLineEdit, "connect_user").text() == "olga"
    qtbot.waitUntil(lambda: again.keyring_read, timeout=10_000)
    assert again.findChild(QLineEdit, "connect_password").text() == "correct horse"
    again.findChild(QPushButton, "forget_password").click()
    qtbot.waitUntil(lambda: keyring.get_password("lkconsole", "olga@lab") is None)
    again.reject()


def test_connect_without_a_keyring_says_so(qtbot, window: MainWindow) -> None:
    keyring.set_keyring(fail.Keyring())
    window.actions["disconnect"].trigger()
    window.actions["connect"].trigger()
    dialog = window.operations.last_dialog
    qtbot.waitUntil(lambda: dialog.keyring_read, timeout=10_000)
    note = dialog.findChild(QLabel, "keyring_note")
    assert note.isVisibleTo(dialog) and "cannot be remembered" in note.text()
    assert not dialog.findChild(QCheckBox, "remember_password").isEnabled()
    dialog.findChild(QPushButton, "connect_ok").click()  # the owner, no password
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)
    assert window.session.role is Role.ADMINISTRATOR


def test_connect_to_a_pacemaker_cluster_asks_for_no_password(qtbot, window: MainWindow) -> None:
    window.actions["disconnect"].trigger()
    window.actions["connect"].trigger()
    dialog = window.operations.last_dialog
    qtbot.waitUntil(lambda: dialog.keyring_read, timeout=10_000)
    user = dialog.findChild(QLineEdit, "connect_user")
    password = dialog.findChild(QLineEdit, "connect_password")
    note = dialog.findChild(QLabel, "identity_note")
    remember = dialog.findChild(QCheckBox, "remember_password")
    assert user.isEnabled() and password.isEnabled() and not note.isVisibleTo(dialog)
    dialog.findChild(QComboBox, "connect_server").setCurrentText("ssh://root@lab1")
    assert not user.isEnabled() and not password.isEnabled() and not remember.isEnabled()
    assert note.isVisibleTo(dialog)
    assert "your role comes from the node's lkadmin, lkoper or lkguest group" in note.text()
    dialog.findChild(QComboBox, "connect_server").setCurrentText("lab")
    assert user.isEnabled() and password.isEnabled() and remember.isEnabled()
    assert not note.isVisibleTo(dialog)


def test_wizard_keyboard_only(qtbot, window: MainWindow) -> None:
    _select(window, "/data")
    window.actions["extend_hierarchy"].trigger()
    wizard = _opened(qtbot, window, ExtendWizard)
    qtbot.keyClick(wizard, Qt.Key.Key_Return)  # Enter = Next
    qtbot.waitUntil(lambda: wizard.currentId() == Page.PRE_EXTEND, timeout=5000)
    assert wizard.button(QWizard.WizardButton.NextButton).isDefault()
    wizard.reject()


def test_verify_mirror_from_the_context_menu(qtbot, window: MainWindow) -> None:
    _extend_in_lab(window, qtbot)
    lab = LabBackend()
    target = lab.layout.server_path("lab2", "/disks/datarep-data.img")
    with open(target, "r+b") as f:
        f.seek(7 * 65536)
        f.write(b"corrupt")
    _select(window, "datarep-data", "lab2")
    menu = window.context_menu("cell")
    mirror_menu = menu.findChild(QMenu, "cell_mirror_menu")
    next(a for a in mirror_menu.actions() if a.objectName() == "verify_mirror").trigger()
    dialog = window.operations.last_dialog
    assert dialog.findChild(QCheckBox, "operation_check").isChecked()
    dialog.findChild(QPushButton, "show_command_button").click()
    assert dialog.findChild(QLineEdit, "show_command").text() == (
        "lkctl mirror verify datarep-data --target lab2 --repair"
    )
    _confirm(qtbot, window)
    assert "1 differing (chunks 7)" in window.message.text()
    qtbot.waitUntil(lambda: _cell(window, "datarep-data", "lab2") == "Target", timeout=10_000)
    source = lab.layout.server_path("lab1", "/disks/datarep-data.img")
    assert digest(target) == digest(source)
    lab.close()


def test_speed_limit_and_force_online_dialogs(qtbot, window: MainWindow) -> None:
    from PySide6.QtWidgets import QSpinBox

    _extend_in_lab(window, qtbot)
    _select(window, "datarep-data", "lab2")
    window.actions["speed_limit"].trigger()
    dialog = window.operations.last_dialog
    dialog.findChild(QSpinBox, "operation_value").setValue(1234)
    dialog.findChild(QPushButton, "show_command_button").click()
    assert dialog.findChild(QLineEdit, "show_command").text() == (
        "lkctl mirror speed datarep-data 1234"
    )
    _confirm(qtbot, window)
    lab = LabBackend()
    assert lab.snapshot().hierarchies[0].mirrors[0].speed_limit_kbps == 1234
    # Both sides in trouble: the copy on lab2 waits for the previous source.
    mirror_ops.pause(lab, "datarep-data", "lab2", local_administrator())
    lab.stop_server("lab1", local_administrator())
    lab.close()
    qtbot.waitUntil(
        lambda: "Wait for Previous Source" in _cell(window, "datarep-data", "lab2"), timeout=10_000
    )
    _select(window, "datarep-data", "lab2")
    assert window.actions["force_online"].isEnabled(), window.actions["force_online"].toolTip()
    window.actions["force_online"].trigger()
    text = window.operations.last_dialog.findChild(QLabel, "operation_text").text()
    assert "may be stale" in text and "<b>lost</b>" in text
    _confirm(qtbot, window)
    qtbot.waitUntil(lambda: _cell(window, "/data", "lab2") == "Active", timeout=10_000)


def test_connect_chooses_another_lab(qtbot, window: MainWindow, tmp_path: Path) -> None:
    other = tmp_path / "other-lab"
    window.actions["disconnect"].trigger()
    window.actions["connect"].trigger()
    dialog = window.operations.last_dialog
    qtbot.waitUntil(lambda: dialog.keyring_read, timeout=10_000)
    dialog.findChild(QComboBox, "connect_server").setCurrentText(f"lab:{other}")
    dialog.findChild(QPushButton, "connect_ok").click()
    qtbot.waitUntil(lambda: window.cluster is not None, timeout=10_000)
    assert window.spec == f"lab:{other}" and (other / "lkconsole.db").exists()
    label = window.findChild(QLabel, "connection_label").text()
    assert label == f"Lab ({other}) cluster · Administrator"
    assert f"lab ({other}) cluster" in window.windowTitle()
    # A spec the console does not know: one message in the dialog, nothing else changes.
    window.actions["disconnect"].trigger()
    window.actions["connect"].trigger()
    bad = window.operations.last_dialog
    bad.findChild(QComboBox, "connect_server").setCurrentText("nfs://somewhere")
    bad.findChild(QPushButton, "connect_ok").click()
    error = bad.findChild(QLabel, "connect_error")
    qtbot.waitUntil(lambda: "unknown cluster 'nfs://somewhere'" in error.text(), timeout=10_000)
    assert window.cluster is None
    bad.reject()
