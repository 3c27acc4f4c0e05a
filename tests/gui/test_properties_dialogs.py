"""Server Properties, Resource Properties, the comm paths' dialogs and Confirm Failover,
through the menus by their visible texts: what the lab then stores and the window shows."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from core.backends.lab import LabBackend, users
from core.model import Role
from gui.actions import find_menu_action
from gui.commpath_dialogs import CreateCommPathDialog, DeleteCommPathDialog
from gui.dialogs import OperationDialog
from gui.main_window import MainWindow
from gui.resource_properties import ResourcePropertiesDialog
from gui.server_properties import ServerPropertiesDialog
from tests.helpers import local_administrator, run_lkctl

H = Qt.Orientation.Horizontal


@pytest.fixture
def window(qtbot, hermetic_env: Path) -> Iterator[MainWindow]:
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model.rowCount() == 1, timeout=10_000)
    yield w


def lkctl_json(*argv: str) -> Any:
    done = run_lkctl([*argv, "--json"])
    assert done.returncode == 0, (argv, done.stderr)
    return json.loads(done.stdout)


def _cell(window: MainWindow, tag: str, server: str) -> str:
    return window.model.index_of(tag, server).data() or ""


def _extend(window: MainWindow, qtbot, target: str = "lab2") -> None:
    done = run_lkctl(["extend", "/data", "--accept-defaults", "--target", target, "--wait"])
    assert done.returncode == 0, done.stderr
    qtbot.waitUntil(lambda: _cell(window, "datarep-data", target) == "Target", timeout=15_000)


def _menu(window: MainWindow, *path: str) -> None:
    action = find_menu_action(window.menuBar(), *path)
    assert action is not None, path
    assert action.isEnabled(), action.toolTip()
    action.trigger()


def _opened(qtbot, window: MainWindow, kind: type) -> Any:
    qtbot.waitUntil(lambda: isinstance(window.operations.last_dialog, kind), timeout=10_000)
    dialog = window.operations.last_dialog
    window.operations.last_dialog = None
    return dialog


def _click(qtbot, dialog: Any, name: str) -> None:
    """Click ``name`` and wait for its worker to answer."""
    dialog.findChild(QPushButton, name).click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=20_000)


def _server_properties(qtbot, window: MainWindow, server: str) -> ServerPropertiesDialog:
    window.tree.select_server(server)
    _menu(window, "Edit", "Server", "Properties")
    return _opened(qtbot, window, ServerPropertiesDialog)


def _header(window: MainWindow, column: int) -> str:
    return str(window.model.headerData(column, H))


# -- Server Properties --------------------------------------------------------------------
def test_server_properties_apply_keeps_it_open_and_stores_the_strategy(
    qtbot, window: MainWindow
) -> None:
    dialog = _server_properties(qtbot, window, "lab2")
    assert dialog.isVisible() and dialog.windowTitle() == "Server Properties: lab2"
    assert [dialog.tabs.tabText(i).replace("&", "") for i in range(dialog.tabs.count())] == [
        "General",
        "Comm Paths",
        "Log",
    ]
    strategy = dialog.findChild(QComboBox, "shutdown_strategy")
    assert strategy.currentText() == "switchover"
    strategy.setCurrentText("do not switchover")
    dialog.findChild(QPushButton, "show_command_button").click()
    command = dialog.findChild(QLineEdit, "show_command")
    assert command.text() == (
        "lkctl server set lab2 --shutdown-strategy do-not-switchover --confirm-failover "
        "lab1=off --confirm-failover lab3=off --confirm-timeout 600 --confirm-default proceed"
    )
    _click(qtbot, dialog, "apply_button")
    assert dialog.isVisible()  # Apply keeps it open
    status = dialog.findChild(QLabel, "server_properties_status")
    assert "lab2" in status.text() and status.isVisible()
    assert lkctl_json("server", "properties", "lab2")["shutdown_strategy"] == "do-not-switchover"
    panel = window.properties_panel
    qtbot.waitUntil(
        lambda: panel.rows().get("Shutdown Strategy") == "do not switchover", timeout=10_000
    )
    # Cancel discards what was not applied.
    strategy.setCurrentText("switchover")
    dialog.findChild(QPushButton, "cancel_button").click()
    assert not dialog.isVisible()
    assert lkctl_json("server", "properties", "lab2")["shutdown_strategy"] == "do-not-switchover"
    assert lkctl_json("history")[-1]["operation"] == "server properties lab2"


def test_server_properties_shows_its_comm_paths_and_its_log(qtbot, window: MainWindow) -> None:
    dialog = _server_properties(qtbot, window, "lab1")
    rows = dialog.path_rows()
    assert rows[0] == ["lab2", "", "", "", "ALIVE (2 of 2 paths ALIVE)"]
    assert rows[1] == ["path 1", "10.213.0.11", "10.213.0.12", "1", "ALIVE"]
    assert [r[0] for r in rows] == ["lab2", "path 1", "path 2", "lab3", "path 1", "path 2"]
    log = dialog.findChild(type(dialog.log), "server_log")
    qtbot.waitUntil(lambda: "lab1" in log.toPlainText(), timeout=10_000)
    dialog.findChild(QPushButton, "cancel_button").click()


def test_the_log_tab_follows_new_lines_without_a_refresh(qtbot, window: MainWindow) -> None:
    """Server Properties' Log tab is live, as View › Log is: another process (lkctl)
    extends /data to lab2, and lab2's new lines appear in the open dialog, the same lines
    as ``lkctl log lab2``, with no click on Refresh."""
    dialog = _server_properties(qtbot, window, "lab2")
    view = dialog.log_view
    assert not view.server.isVisible()  # the dialog's server, no chooser
    qtbot.waitUntil(lambda: "lines of lab2's log" in view.status.text(), timeout=10_000)
    before = view.lines()
    assert run_lkctl(["extend", "/data", "--accept-defaults", "--target", "lab2"]).returncode == 0

    def same_as_lkctl() -> bool:
        return view.lines() == run_lkctl(["log", "lab2"]).stdout.rstrip("\n").split("\n")

    qtbot.waitUntil(same_as_lkctl, timeout=20_000)
    assert len(view.lines()) > len(before)
    assert any("extend" in line for line in view.lines()[len(before) :])
    dialog.findChild(QPushButton, "cancel_button").click()


def test_a_double_click_on_a_header_opens_server_properties(qtbot, window: MainWindow) -> None:
    window.tree.header().sectionDoubleClicked.emit(3)
    dialog = _opened(qtbot, window, ServerPropertiesDialog)
    assert dialog.server_name == "lab3"
    dialog.reject()


def test_bad_server_properties_show_under_the_field_and_change_nothing(
    qtbot, window: MainWindow
) -> None:
    before = lkctl_json("server", "properties", "lab2")
    dialog = _server_properties(qtbot, window, "lab2")
    dialog.findChild(QCheckBox, "confirm_failover_lab1").setChecked(True)
    # A value the combo box cannot make (as a stale or scripted request would carry):
    # core refuses it, the dialog shows it under the field.
    bad = dataclasses.replace(dialog.values(), shutdown_strategy="sideways")
    dialog.values = lambda: bad  # type: ignore[method-assign]
    _click(qtbot, dialog, "ok_button")
    assert dialog.isVisible()  # refused: it stays open
    assert "Shutdown Strategy" in dialog.problem_text("shutdown_strategy")
    assert lkctl_json("server", "properties", "lab2") == before
    dialog.reject()


# -- Failover Confirmation ----------------------------------------------------------------
def test_failover_confirmation_is_asked_in_the_message_bar_then_confirmed(
    qtbot, window: MainWindow
) -> None:
    _extend(window, qtbot)
    dialog = _server_properties(qtbot, window, "lab2")
    dialog.findChild(QCheckBox, "confirm_failover_lab1").setChecked(True)
    _click(qtbot, dialog, "ok_button")
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=5_000)
    assert lkctl_json("server", "properties", "lab2")["confirm_failover_from"] == ["lab1"]
    confirm = find_menu_action(window.menuBar(), "Edit", "Server", "Confirm Failover")
    assert not confirm.isEnabled() and "No failover waits" in confirm.toolTip()

    window.tree.select_server("lab1")
    _menu(window, "Edit", "Server", "Stop Server")
    stop = _opened(qtbot, window, OperationDialog)
    stop.findChild(QPushButton, "operation_ok").click()
    qtbot.waitUntil(lambda: not stop.isVisible(), timeout=20_000)
    message = window.findChild(QLabel, "message_bar")
    qtbot.waitUntil(lambda: "waits for your confirmation" in message.text(), timeout=10_000)
    assert message.text().startswith("Failover of /data from lab1 to lab2 waits for your")
    assert "lkctl confirm-failover lab2" in message.text()
    qtbot.waitUntil(
        lambda: any("waits for the administrator" in x for x in window.output_panel.lines()),
        timeout=10_000,
    )
    assert _cell(window, "/data", "lab2") != "Active"

    qtbot.waitUntil(confirm.isEnabled, timeout=10_000)
    assert "/data from lab1 to lab2" in confirm.toolTip()
    _menu(window, "Edit", "Server", "Confirm Failover")
    answer = _opened(qtbot, window, OperationDialog)
    assert answer.findChild(QComboBox, "operation_server").currentText() == "lab2"
    answer.findChild(QPushButton, "operation_ok").click()
    qtbot.waitUntil(lambda: not answer.isVisible(), timeout=20_000)
    qtbot.waitUntil(lambda: _cell(window, "/data", "lab2") == "Active", timeout=15_000)
    assert lkctl_json("status")["hierarchies"][0]["in_service_on"] == "lab2"
    assert lkctl_json("history")[-1]["operation"] == "confirm failover to lab2"


# -- Resource Properties ------------------------------------------------------------------
def test_resource_properties_refuses_a_duplicate_priority_under_its_field(
    qtbot, window: MainWindow
) -> None:
    _extend(window, qtbot)
    before = lkctl_json("resource", "properties", "/data")
    r = window.cluster.find_tag("datarep-data")
    assert window.tree.select_resource(r.hierarchy_id, r.resource_id, "lab1")
    _menu(window, "Edit", "Resource", "Properties")
    dialog = _opened(qtbot, window, ResourcePropertiesDialog)
    assert dialog.windowTitle() == "Resource Properties: datarep-data"
    lab1 = dialog.findChild(QSpinBox, "priority_lab1")
    lab2 = dialog.findChild(QSpinBox, "priority_lab2")
    assert (lab1.value(), lab2.value()) == (1, 10)
    assert dialog.findChild(QCheckBox, "asynchronous_lab2") is not None
    switchback = dialog.findChild(QComboBox, "switchback_type")
    assert switchback.currentText() == "intelligent"
    lab2.setValue(1)
    _click(qtbot, dialog, "ok_button")
    assert dialog.isVisible()
    assert "lab1" in dialog.problem_text("priority_lab2")
    assert dialog.problem_text("priority_lab1") == ""
    assert lkctl_json("resource", "properties", "/data") == before
    # The DataKeeper rule: no automatic switchback in a hierarchy with a mirror.
    lab2.setValue(30)
    switchback.setCurrentText("automatic")
    _click(qtbot, dialog, "apply_button")
    assert "intelligent" in dialog.problem_text("switchback_type")
    assert lkctl_json("resource", "properties", "/data") == before
    # A good change applies (Apply: it stays open).
    switchback.setCurrentText("intelligent")
    _click(qtbot, dialog, "apply_button")
    assert dialog.isVisible() and dialog.problem_text("priority_lab2") == ""
    status = dialog.findChild(QLabel, "resource_properties_status")
    assert status.text() == "Priorities of /data: lab1=1, lab2=30."
    after = lkctl_json("resource", "properties", "/data")
    assert after["priorities"] == {"lab1": 1, "lab2": 30}
    dialog.findChild(QPushButton, "cancel_button").click()


def test_a_double_click_on_a_cell_opens_resource_properties(qtbot, window: MainWindow) -> None:
    index = window.tree.model().index(0, 1)
    window.tree.doubleClicked.emit(index)
    dialog = _opened(qtbot, window, ResourcePropertiesDialog)
    assert dialog.tag == "/data"
    assert dialog.findChild(QCheckBox, "asynchronous_lab2") is None  # not extended
    dialog.reject()


# -- Comm paths ---------------------------------------------------------------------------
def test_comm_paths_create_fail_warn_and_fail_over(qtbot, window: MainWindow) -> None:
    _extend(window, qtbot)
    window.tree.select_server("lab1")
    _menu(window, "Edit", "Server", "Create Comm Path")
    create = _opened(qtbot, window, CreateCommPathDialog)
    assert create.findChild(QComboBox, "server").currentText() == "lab1"
    create.findChild(QComboBox, "peer").setCurrentText("lab2")
    create.findChild(QLineEdit, "local_address").setText("10.215.0.500")
    create.findChild(QLineEdit, "remote_address").setText("10.215.0.12")
    before = lkctl_json("commpath", "list")
    _click(qtbot, create, "operation_ok")
    assert create.isVisible()
    assert "address" in create.problem_text("local_address")
    assert lkctl_json("commpath", "list") == before
    create.findChild(QLineEdit, "local_address").setText("10.215.0.11")
    create.findChild(QPushButton, "show_command_button").click()
    assert create.findChild(QLineEdit, "show_command").text() == (
        "lkctl commpath create lab1 lab2 --local 10.215.0.11 --remote 10.215.0.12"
    )
    _click(qtbot, create, "operation_ok")
    qtbot.waitUntil(lambda: not create.isVisible(), timeout=5_000)
    assert len(lkctl_json("commpath", "list", "lab1")["paths"]) == 5

    # Fail two of the three paths to lab2: one is left, lab1 shows ALIVE (warning).
    for n in ("1", "2"):
        assert run_lkctl(["lab", "commpath-down", "lab1", "lab2", "--path", n]).returncode == 0
    qtbot.waitUntil(lambda: _header(window, 1) == "lab1 — ALIVE (warning)", timeout=10_000)
    dialog = _server_properties(qtbot, window, "lab1")
    assert dialog.path_rows()[0][4] == "ALIVE (warning) (1 of 3 paths ALIVE)"
    dialog.reject()
    # The last path to lab2, and every path to lab3: lab1 is cut off, /data fails over.
    assert run_lkctl(["lab", "commpath-down", "lab1", "lab2"]).returncode == 0
    assert _cell(window, "/data", "lab1") == "Active"
    assert run_lkctl(["lab", "commpath-down", "lab1", "lab3"]).returncode == 0
    qtbot.waitUntil(lambda: _cell(window, "/data", "lab2") == "Active", timeout=15_000)
    assert _cell(window, "/data", "lab1") != "Active"

    # Delete the path made above (it is DEAD now).
    window.tree.select_server("lab1")
    _menu(window, "Edit", "Server", "Delete Comm Path")
    delete = _opened(qtbot, window, DeleteCommPathDialog)
    path = delete.findChild(QComboBox, "path")
    delete.findChild(QComboBox, "peer").setCurrentText("lab3")  # its paths are listed
    assert [path.itemText(i) for i in range(path.count())] == [
        "1: 10.213.0.11 → 10.213.0.13 (DEAD)",
        "2: 10.214.0.11 → 10.214.0.13 (DEAD)",
    ]
    delete.findChild(QComboBox, "peer").setCurrentText("lab2")
    assert path.count() == 3
    path.setCurrentIndex(path.findData(3))
    assert path.currentText() == "3: 10.215.0.11 → 10.215.0.12 (DEAD)"
    _click(qtbot, delete, "operation_ok")
    qtbot.waitUntil(lambda: not delete.isVisible(), timeout=5_000)
    assert len(lkctl_json("commpath", "list", "lab1")["paths"]) == 4


def test_with_a_resource_selected_delete_comm_path_sees_the_paths(
    qtbot, window: MainWindow
) -> None:
    r = window.cluster.find_tag("/data")
    assert window.tree.select_resource(r.hierarchy_id, r.resource_id, "lab1")
    delete = find_menu_action(window.menuBar(), "Edit", "Server", "Delete Comm Path")
    assert delete.isEnabled(), delete.toolTip()
    assert delete.toolTip() == "Delete a comm path of lab1 (4 now)."


def test_every_widget_of_the_dialogs_has_an_accessible_name(qtbot, window: MainWindow) -> None:
    _extend(window, qtbot)
    dialogs = [_server_properties(qtbot, window, "lab1")]
    r = window.cluster.find_tag("datarep-data")
    assert window.tree.select_resource(r.hierarchy_id, r.resource_id, "lab1")
    _menu(window, "Edit", "Resource", "Properties")
    dialogs.append(_opened(qtbot, window, ResourcePropertiesDialog))
    for text, kind in (
        ("Create Comm Path", CreateCommPathDialog),
        ("Delete Comm Path", DeleteCommPathDialog),
    ):
        _menu(window, "Edit", "Server", text)
        dialogs.append(_opened(qtbot, window, kind))
    for dialog in dialogs:
        for widget in dialog.findChildren(QWidget):
            name = widget.objectName()
            if name and not name.startswith("qt_"):
                assert widget.accessibleName(), (dialog.objectName(), name)
        dialog.reject()


def test_a_blocked_failover_and_a_clean_stop_by_the_shutdown_strategy(
    qtbot, window: MainWindow
) -> None:
    _extend(window, qtbot)
    done = run_lkctl(["server", "set", "lab2", "--confirm-failover", "lab1=on"])
    assert done.returncode == 0, done.stderr
    window.tree.select_server("lab1")
    _menu(window, "Edit", "Server", "Stop Server")
    stop = _opened(qtbot, window, OperationDialog)
    stop.findChild(QPushButton, "operation_ok").click()
    qtbot.waitUntil(lambda: not stop.isVisible(), timeout=20_000)
    confirm = find_menu_action(window.menuBar(), "Edit", "Server", "Confirm Failover")
    qtbot.waitUntil(confirm.isEnabled, timeout=10_000)
    _menu(window, "Edit", "Server", "Confirm Failover")
    answer = _opened(qtbot, window, OperationDialog)
    answer.findChild(QCheckBox, "operation_check").setChecked(True)  # Block it instead
    answer.findChild(QPushButton, "show_command_button").click()
    assert answer.findChild(QLineEdit, "show_command").text() == (
        "lkctl confirm-failover lab2 --deny"
    )
    answer.findChild(QPushButton, "operation_ok").click()
    qtbot.waitUntil(lambda: not answer.isVisible(), timeout=20_000)
    qtbot.waitUntil(lambda: not confirm.isEnabled(), timeout=10_000)
    assert lkctl_json("status")["hierarchies"][0]["in_service_on"] is None
    assert "blocked by" in window.findChild(QLabel, "message_bar").text()

    # lab1 back (/data with it, where it was), then a clean stop: the Shutdown Strategy
    # (switchover) moves /data to lab2 without asking.
    done = run_lkctl(["lab", "start", "lab1"])
    assert done.returncode == 0, done.stderr
    qtbot.waitUntil(lambda: _cell(window, "/data", "lab1") == "Active", timeout=15_000)
    qtbot.waitUntil(lambda: _cell(window, "datarep-data", "lab2") == "Target", timeout=15_000)
    window.tree.select_server("lab1")
    _menu(window, "Edit", "Server", "Stop Server")
    stop = _opened(qtbot, window, OperationDialog)
    clean = stop.findChild(QCheckBox, "operation_check")
    assert "Shutdown Strategy (switchover)" in clean.text()
    clean.setChecked(True)
    stop.findChild(QPushButton, "show_command_button").click()
    assert stop.findChild(QLineEdit, "show_command").text() == "lkctl lab stop lab1 --clean --yes"
    stop.findChild(QPushButton, "operation_ok").click()
    qtbot.waitUntil(lambda: not stop.isVisible(), timeout=20_000)
    qtbot.waitUntil(lambda: _cell(window, "/data", "lab2") == "Active", timeout=15_000)


def test_an_operator_sees_the_properties_but_may_not_change_them(qtbot, window: MainWindow) -> None:
    backend = LabBackend()
    users.add_user(backend.store, "olga", Role.OPERATOR, "correct horse", local_administrator())
    backend.close()
    window.actions["disconnect"].trigger()
    window.actions["connect"].trigger()
    connect = window.operations.last_dialog
    qtbot.waitUntil(lambda: connect.keyring_read, timeout=10_000)
    connect.findChild(QLineEdit, "connect_user").setText("olga")
    connect.findChild(QLineEdit, "connect_password").setText("correct horse")
    connect.findChild(QPushButton, "connect_ok").click()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)
    assert window.session.role is Role.OPERATOR
    dialog = _server_properties(qtbot, window, "lab2")
    assert not dialog.findChild(QComboBox, "shutdown_strategy").isEnabled()
    assert not dialog.findChild(QPushButton, "ok_button").isEnabled()
    assert not dialog.findChild(QPushButton, "apply_button").isEnabled()
    assert dialog.findChild(QLabel, "server_properties_error").text() == (
        "Changing Server Properties needs the Administrator role; olga is signed in as "
        "Operator. Sign in as an Administrator or ask one. They are shown, not changed, here."
    )
    assert dialog.path_rows()[0][4] == "ALIVE (2 of 2 paths ALIVE)"  # shown all the same
    dialog.reject()
    r = window.cluster.find_tag("/data")
    assert window.tree.select_resource(r.hierarchy_id, r.resource_id, "lab1")
    _menu(window, "Edit", "Resource", "Properties")
    resource = _opened(qtbot, window, ResourcePropertiesDialog)
    assert not resource.findChild(QSpinBox, "priority_lab1").isEnabled()
    assert "olga is signed in as Operator" in resource.general_error.text()
    resource.reject()
    create = find_menu_action(window.menuBar(), "Edit", "Server", "Create Comm Path")
    assert not create.isEnabled() and "needs the Administrator role" in create.toolTip()


def test_the_comm_paths_tab_follows_the_cluster_while_open(qtbot, window: MainWindow) -> None:
    dialog = _server_properties(qtbot, window, "lab2")
    strategy = dialog.findChild(QComboBox, "shutdown_strategy")
    strategy.setCurrentText("do not switchover")  # being edited: kept across refreshes
    assert run_lkctl(["lab", "commpath-down", "lab2", "lab3", "--path", "2"]).returncode == 0
    qtbot.waitUntil(
        lambda: (
            dialog.path_rows()[3] == ["lab3", "", "", "", "ALIVE (warning) (1 of 2 paths ALIVE)"]
        ),
        timeout=10_000,
    )
    assert dialog.path_rows()[5][4] == "DEAD"
    assert dialog.findChild(QLabel, "server_state").text() == "ALIVE (warning)"
    assert strategy.currentText() == "do not switchover"
    dialog.reject()
